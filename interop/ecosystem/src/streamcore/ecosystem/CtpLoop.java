package streamcore.ecosystem;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.AuthorizationException;
import org.apache.kafka.common.errors.OutOfOrderSequenceException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * A consume-transform-produce loop with the Java client, for
 * tests/ecosystem/test_exactly_once_loop.py; the twin of interop/ecosystem/ctp_confluent.py.
 *
 * <p>Usage: CtpLoop BOOTSTRAP GROUP TRANSACTIONAL_ID INPUT OUTPUT SEED ABORT_PERCENT PAUSE_AFTER
 *
 * <p>Reads INPUT (read_committed, in the consumer group GROUP) and writes each record to
 * OUTPUT with the same key and the value prefixed by "out-", one transaction per polled batch
 * that also carries the batch's consumed offsets (sendOffsetsToTransaction). A seeded random
 * generator (SEED) aborts ABORT_PERCENT % of the transactions after their records were
 * produced and flushed; the loop then seeks back to the batch's first offsets, so the same
 * records are processed again in a later transaction. Once this process has committed
 * PAUSE_AFTER records or more (negative: never), it produces the next batch, flushes it,
 * sends its offsets, prints "paused" and waits with the transaction open, to be killed.
 *
 * <p>Stdout lines: "ready", "committed N" (records committed by this process so far),
 * "aborted N" (records in the aborted batch), "paused", "fatal ERROR" before an exit 1,
 * "stopped" after a clean stop (SIGTERM).
 */
public final class CtpLoop {
  private static final int BATCH = 200;
  private static final byte[] PREFIX = "out-".getBytes(java.nio.charset.StandardCharsets.UTF_8);

  private CtpLoop() {}

  public static void main(String[] args) throws InterruptedException {
    if (args.length != 8) {
      System.err.println(
          "usage: CtpLoop BOOTSTRAP GROUP TRANSACTIONAL_ID INPUT OUTPUT SEED ABORT_PERCENT PAUSE_AFTER");
      System.exit(2);
    }
    String input = args[3];
    String output = args[4];
    Random rng = new Random(Long.parseLong(args[5]));
    int abortPercent = Integer.parseInt(args[6]);
    long pauseAfter = Long.parseLong(args[7]);

    Properties c = new Properties();
    c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    c.put(ConsumerConfig.GROUP_ID_CONFIG, args[1]);
    c.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    c.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, BATCH);
    // The broker's minimum: the replacement's join waits for the killed member's session.
    c.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 6000);
    c.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 1000);
    c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
    c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, args[2]);
    p.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, 20000);
    p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class);
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class);

    KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(c);
    KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p);
    CountDownLatch done = new CountDownLatch(1);
    Thread main = Thread.currentThread();
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      consumer.wakeup();
      try {
        done.await();
      } catch (InterruptedException e) {
        main.interrupt();
      }
    }));
    int code = 0;
    try {
      producer.initTransactions();
      say("ready");
      consumer.subscribe(List.of(input));
      long committed = 0;
      while (true) {
        ConsumerRecords<byte[], byte[]> batch = consumer.poll(Duration.ofMillis(500));
        if (batch.isEmpty()) {
          continue;
        }
        Map<TopicPartition, Long> first = new HashMap<>();
        Map<TopicPartition, OffsetAndMetadata> next = new HashMap<>();
        for (ConsumerRecord<byte[], byte[]> r : batch) {
          TopicPartition tp = new TopicPartition(r.topic(), r.partition());
          first.putIfAbsent(tp, r.offset());
          next.put(tp, new OffsetAndMetadata(r.offset() + 1));
        }
        producer.beginTransaction();
        try {
          for (ConsumerRecord<byte[], byte[]> r : batch) {
            producer.send(new ProducerRecord<>(output, r.key(), prefixed(r.value())));
          }
          boolean pause = pauseAfter >= 0 && committed >= pauseAfter;
          boolean abort = !pause && rng.nextInt(100) < abortPercent;
          if (abort) {
            producer.flush();
            producer.abortTransaction();
            first.forEach(consumer::seek);
            say("aborted " + batch.count());
            continue;
          }
          producer.sendOffsetsToTransaction(next, consumer.groupMetadata());
          if (pause) {
            producer.flush();
            say("paused");
            new CountDownLatch(1).await();
          }
          producer.commitTransaction();
        } catch (ProducerFencedException | OutOfOrderSequenceException | AuthorizationException e) {
          throw e; // fatal for this producer (Kafka's rule)
        } catch (KafkaException e) {
          // Abortable: abort and process the batch again.
          producer.abortTransaction();
          first.forEach(consumer::seek);
          say("aborted " + batch.count() + " after " + e);
          continue;
        }
        committed += batch.count();
        say("committed " + committed);
      }
    } catch (WakeupException e) {
      say("stopped");
    } catch (KafkaException e) {
      say("fatal " + e);
      code = 1;
    } finally {
      consumer.close();
      producer.close();
      done.countDown();
    }
    if (code != 0) {
      System.exit(code);
    }
  }

  private static byte[] prefixed(byte[] value) {
    byte[] out = new byte[PREFIX.length + value.length];
    System.arraycopy(PREFIX, 0, out, 0, PREFIX.length);
    System.arraycopy(value, 0, out, PREFIX.length, value.length);
    return out;
  }

  private static synchronized void say(String line) {
    System.out.println(line);
    System.out.flush();
  }
}
