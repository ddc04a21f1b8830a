"""asv benchmarks of streamcore (see ../asv.conf.json)."""
