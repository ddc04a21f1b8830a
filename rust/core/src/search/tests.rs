use super::*;

fn doc(offset: u64, ts: i64, value: &str) -> Doc {
    Doc {
        partition: 3,
        offset,
        timestamp: ts,
        key: Some(format!("k{offset}").into_bytes()),
        value: Some(value.as_bytes().to_vec()),
    }
}

fn offsets(index: &SearchIndex, q: &str) -> Vec<u64> {
    index
        .search(q, None, 100)
        .unwrap()
        .iter()
        .map(|h| h.offset)
        .collect()
}

#[test]
fn queries_over_json_and_text() {
    let dir = std::env::temp_dir().join(format!("sc-search-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let index = SearchIndex::open(&dir, MIN_WRITER_MEMORY_BYTES).unwrap();
    index
        .add(&[
            doc(0, 10, r#"{"level":"error","svc":{"name":"payments"},"code":500,"msg":"card declined by bank"}"#),
            doc(1, 20, r#"{"level":"info","svc":{"name":"orders"},"code":200.0,"msg":"bank ok"}"#),
            doc(2, 30, "plain error text about payments"),
            doc(3, 40, r#"{"level":"error","code":"500","tags":["a b","c"]}"#),
        ])
        .unwrap();
    assert_eq!(
        offsets(&index, "level:error"),
        Vec::<u64>::new(),
        "not committed yet"
    );
    index.commit().unwrap();
    assert_eq!(index.doc_count(), 4);
    assert_eq!(offsets(&index, "level:error"), vec![0, 3]);
    assert_eq!(
        offsets(&index, "level:error AND svc.name:payments"),
        vec![0]
    );
    assert_eq!(offsets(&index, "payments"), vec![0, 2]);
    assert_eq!(offsets(&index, "code:500"), vec![0, 3]);
    assert_eq!(offsets(&index, "code:200"), vec![1]);
    assert_eq!(offsets(&index, "code:[100 TO 300]"), vec![1]);
    assert_eq!(offsets(&index, "code:[* TO *]"), vec![0, 1]);
    assert_eq!(offsets(&index, r#"msg:"declined by bank""#), vec![0]);
    assert_eq!(offsets(&index, r#""by declined""#), Vec::<u64>::new());
    assert_eq!(
        offsets(&index, r#"tags:"b c""#),
        Vec::<u64>::new(),
        "phrase spans two leaves"
    );
    assert_eq!(offsets(&index, r#"tags:"a b""#), vec![3]);
    assert_eq!(offsets(&index, "NOT level:error"), vec![1, 2]);
    assert_eq!(offsets(&index, "info OR text"), vec![1, 2]);
    assert_eq!(offsets(&index, "_key:k2"), vec![2]);
    assert_eq!(offsets(&index, ""), vec![0, 1, 2, 3]);
    let since: Vec<u64> = index
        .search("", Some(25), 1)
        .unwrap()
        .iter()
        .map(|h| h.offset)
        .collect();
    assert_eq!(since, vec![2]);
    let hit = index.search("_key:k3", None, 5).unwrap()[0];
    assert_eq!(
        hit,
        Hit {
            partition: 3,
            offset: 3,
            timestamp: 40
        }
    );

    // Re-adding replaces; deleting a range removes.
    index
        .add(&[doc(1, 20, "replaced"), doc(4, 50, "new")])
        .unwrap();
    index.delete_range(2, 4).unwrap();
    index.commit().unwrap();
    assert_eq!(offsets(&index, ""), vec![0, 1, 4]);
    assert_eq!(offsets(&index, "replaced"), vec![1]);
    assert_eq!(offsets(&index, "bank"), vec![0]);
    drop(index);

    let index = SearchIndex::open(&dir, MIN_WRITER_MEMORY_BYTES).unwrap();
    assert_eq!(index.max_offset(), Some(4));
    assert_eq!(offsets(&index, ""), vec![0, 1, 4]);
    index.add(&[doc(0, 10, "again")]).unwrap();
    index.commit().unwrap();
    assert_eq!(offsets(&index, "again"), vec![0]);
    assert_eq!(index.doc_count(), 3);
    assert!(index.search("(oops", None, 5).is_err());
    drop(index);
    std::fs::remove_dir_all(&dir).unwrap();
}
