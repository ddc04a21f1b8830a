package streamcore.ecosystem;

import java.time.Duration;
import java.util.Arrays;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.processor.StateRestoreListener;

/**
 * Kafka Streams word count for tests/ecosystem: lines from the input topic are split into
 * words, re-keyed by word (a repartition topic made by Streams), counted in a persistent
 * store "counts" (its changelog topic made by Streams) and the running counts written to
 * the output topic as (word, long).
 *
 * <p>Usage: WordCount BOOTSTRAP APPLICATION_ID STATE_DIR INPUT_TOPIC OUTPUT_TOPIC [GUARANTEE]
 *
 * <p>GUARANTEE is the processing.guarantee: at_least_once (the default) or exactly_once_v2.
 * Under exactly_once_v2 every commit is a transaction of the output, changelog and
 * repartition records with the consumed offsets, and the restarted app reads its changelog
 * and repartition topic read_committed.
 *
 * <p>Stdout carries one line per event the test waits for: "state NEW_STATE" on every
 * state change, "restored STORE PARTITION RECORDS" when a store finishes restoring from
 * its changelog, and "closed" after a clean close. SIGTERM closes the app.
 */
public final class WordCount {
  private WordCount() {}

  public static void main(String[] args) throws InterruptedException {
    if (args.length != 5 && args.length != 6) {
      System.err.println(
          "usage: WordCount BOOTSTRAP APPLICATION_ID STATE_DIR INPUT_TOPIC OUTPUT_TOPIC [GUARANTEE]");
      System.exit(2);
    }
    Properties props = new Properties();
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, args[1]);
    props.put(StreamsConfig.STATE_DIR_CONFIG, args[2]);
    props.put(
        StreamsConfig.PROCESSING_GUARANTEE_CONFIG,
        args.length == 6 ? args[5] : StreamsConfig.AT_LEAST_ONCE);
    props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
    // Short intervals so that a test of a few thousand records sees commits and
    // repartition-topic purges (DeleteRecords) within seconds, not the 30 s defaults.
    props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 200);
    props.put(StreamsConfig.REPARTITION_PURGE_INTERVAL_MS_CONFIG, 200);
    props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
    // A closing Streams member does not leave its group (only static members are removed),
    // so a restarted instance joins once the old member's session has expired: the
    // broker's minimum session (6 s) instead of the 45 s default.
    props.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 6000);
    props.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), 1500);

    StreamsBuilder builder = new StreamsBuilder();
    builder.stream(args[3], Consumed.with(Serdes.String(), Serdes.String()))
        .flatMapValues(line -> Arrays.asList(line.toLowerCase().split("\\W+")))
        .filter((key, word) -> !word.isEmpty())
        .groupBy((key, word) -> word, Grouped.with("words", Serdes.String(), Serdes.String()))
        .count(Materialized.as("counts"))
        .toStream()
        .to(args[4], Produced.with(Serdes.String(), Serdes.Long()));

    KafkaStreams streams = new KafkaStreams(builder.build(), props);
    streams.setStateListener((now, before) -> say("state " + now));
    streams.setGlobalStateRestoreListener(new StateRestoreListener() {
      @Override
      public void onRestoreStart(TopicPartition partition, String store, long start, long end) {}

      @Override
      public void onBatchRestored(TopicPartition partition, String store, long batchEnd, long restored) {}

      @Override
      public void onRestoreEnd(TopicPartition partition, String store, long restored) {
        say("restored " + store + " " + partition.partition() + " " + restored);
      }
    });
    CountDownLatch closed = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      streams.close(Duration.ofSeconds(30));
      say("closed");
      closed.countDown();
    }));
    streams.start();
    closed.await();
  }

  private static synchronized void say(String line) {
    System.out.println(line);
    System.out.flush();
  }
}
