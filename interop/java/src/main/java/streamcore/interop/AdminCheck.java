package streamcore.interop;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.function.Predicate;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Drives the Java Admin client through the admin APIs tools call, for streamcore's interop
 * tests; the same run against Apache Kafka is the control. Prints one line per step:
 *
 * <pre>
 * admin BOOTSTRAP TOPIC GROUP TXN(true|false)
 * </pre>
 *
 * "step result" lines; a step the broker refuses prints the exception's simple class name.
 * With TXN true a transactional producer's initTransactions is tried last and its outcome
 * printed ("ok", or the exception's class).
 */
public final class AdminCheck {
  private AdminCheck() {}

  public static void main(String[] args) throws Exception {
    if (!args[0].equals("admin")) {
      throw new IllegalArgumentException("unknown mode " + args[0]);
    }
    run(args[1], args[2], args[3], Boolean.parseBoolean(args[4]));
  }

  private static String failure(Exception e) {
    Throwable cause = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
    return cause.getClass().getSimpleName();
  }

  private static void run(String bootstrap, String topic, String group, boolean txn) throws Exception {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    try (Admin admin = Admin.create(p)) {
      admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get();
      ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);

      set(admin, resource, new AlterConfigOp(new ConfigEntry("retention.ms", "123000"), AlterConfigOp.OpType.SET));
      Config config = describeUntil(admin, resource, c -> "123000".equals(c.get("retention.ms").value()));
      System.out.println("retention.ms " + config.get("retention.ms").value());
      System.out.println("append-to-non-list " + trySet(admin, resource,
          new AlterConfigOp(new ConfigEntry("retention.ms", "5"), AlterConfigOp.OpType.APPEND)));
      System.out.println("unknown-config " + trySet(admin, resource,
          new AlterConfigOp(new ConfigEntry("no.such.config", "5"), AlterConfigOp.OpType.SET)));
      set(admin, resource, new AlterConfigOp(new ConfigEntry("retention.ms", ""), AlterConfigOp.OpType.DELETE));
      config = describeUntil(admin, resource, c -> c.get("retention.ms").isDefault());
      System.out.println("retention.ms-default " + config.get("retention.ms").isDefault());

      admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(3))).all().get();
      // As with configs: Apache Kafka's broker may list the new partitions a moment later.
      long deadline = System.nanoTime() + Duration.ofSeconds(15).toNanos();
      int count = partitionCount(admin, topic);
      while (count != 3 && System.nanoTime() < deadline) {
        Thread.sleep(50);
        count = partitionCount(admin, topic);
      }
      System.out.println("partitions " + count);
      String shrink;
      try {
        admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(2))).all().get();
        shrink = "ok";
      } catch (ExecutionException e) {
        shrink = failure(e);
      }
      System.out.println("shrink " + shrink);

      TopicPartition tp0 = new TopicPartition(topic, 0);
      produce(bootstrap, topic, 10);
      long low = admin.deleteRecords(Map.of(tp0, RecordsToDelete.beforeOffset(4))).lowWatermarks().get(tp0)
          .get().lowWatermark();
      System.out.println("low-watermark " + low);
      long earliest = admin.listOffsets(Map.of(tp0, OffsetSpec.earliest())).partitionResult(tp0).get().offset();
      System.out.println("earliest " + earliest);

      List<ProducerState> producers = admin.describeProducers(List.of(tp0)).partitionResult(tp0).get()
          .activeProducers();
      System.out.println("producers " + producers.size() + " last-sequence "
          + (producers.isEmpty() ? -1 : producers.get(0).lastSequence()));

      Collection<Integer> brokers = admin.describeCluster().nodes().get().stream().map(n -> n.id()).toList();
      Map<Integer, Map<String, LogDirDescription>> dirs = admin.describeLogDirs(brokers).allDescriptions().get();
      long size = -1;
      for (Map<String, LogDirDescription> byDir : dirs.values()) {
        for (LogDirDescription d : byDir.values()) {
          if (d.replicaInfos().containsKey(tp0)) {
            size = d.replicaInfos().get(tp0).size();
          }
        }
      }
      System.out.println("logdir-size-positive " + (size > 0));

      TopicPartition tp1 = new TopicPartition(topic, 1);
      admin.alterConsumerGroupOffsets(group, Map.of(tp0, new OffsetAndMetadata(5), tp1, new OffsetAndMetadata(0)))
          .all().get();
      admin.deleteConsumerGroupOffsets(group, Set.of(tp1)).all().get();
      Map<TopicPartition, OffsetAndMetadata> left = admin.listConsumerGroupOffsets(group)
          .partitionsToOffsetAndMetadata().get();
      System.out.println("offsets-after-offset-delete " + left.keySet().stream().map(TopicPartition::partition)
          .sorted().toList());
      admin.deleteConsumerGroups(List.of(group)).all().get();
      String again;
      try {
        admin.deleteConsumerGroups(List.of(group)).all().get();
        again = "ok";
      } catch (ExecutionException e) {
        again = failure(e);
      }
      System.out.println("delete-group-again " + again);
    }
    if (txn) {
      Properties tp = new Properties();
      tp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
      tp.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "admin-check-txn");
      tp.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
      try (KafkaProducer<byte[], byte[]> producer =
          new KafkaProducer<>(tp, new ByteArraySerializer(), new ByteArraySerializer())) {
        long start = System.nanoTime();
        String outcome;
        try {
          producer.initTransactions();
          outcome = "ok";
        } catch (Exception e) {
          outcome = e.getClass().getSimpleName();
        }
        System.out.println("init-transactions " + outcome + " " + (System.nanoTime() - start) / 1_000_000 + "ms");
        producer.close(Duration.ZERO);
      }
    }
  }

  /**
   * The topic's configs once {@code seen} holds, or as they are after 15 s. Apache Kafka
   * (KRaft) answers an alter once the controller has committed it and the broker applies
   * it to its metadata afterwards, so a describe right after may still show the old value;
   * streamcore shows the new one at once.
   */
  private static Config describeUntil(Admin admin, ConfigResource resource, Predicate<Config> seen)
      throws Exception {
    long deadline = System.nanoTime() + Duration.ofSeconds(15).toNanos();
    Config config = admin.describeConfigs(List.of(resource)).all().get().get(resource);
    while (!seen.test(config) && System.nanoTime() < deadline) {
      Thread.sleep(50);
      config = admin.describeConfigs(List.of(resource)).all().get().get(resource);
    }
    return config;
  }

  private static int partitionCount(Admin admin, String topic) throws Exception {
    return admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().size();
  }

  private static void set(Admin admin, ConfigResource resource, AlterConfigOp op) throws Exception {
    admin.incrementalAlterConfigs(Map.of(resource, List.of(op))).all().get();
  }

  private static String trySet(Admin admin, ConfigResource resource, AlterConfigOp op) {
    try {
      set(admin, resource, op);
      return "ok";
    } catch (Exception e) {
      return failure(e);
    }
  }

  private static void produce(String bootstrap, String topic, int count) throws Exception {
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
    try (KafkaProducer<byte[], byte[]> producer =
        new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
      for (int i = 0; i < count; i++) {
        // One record per batch, so that DeleteRecords lands between batches.
        producer.send(new ProducerRecord<>(topic, 0, null, ("v" + i).getBytes())).get();
      }
    }
  }
}
