package streamcore.interop;

import java.io.FileInputStream;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.clients.admin.UserScramCredentialsDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Drives the real Java client for streamcore's interop tests. Every mode prints
 * machine-readable lines on stdout; the Python test checks them.
 *
 * <pre>
 * create   BOOTSTRAP TOPIC PARTITIONS
 * produce  BOOTSTRAP TOPIC COUNT COMPRESSION IDEMPOTENT(true|false)
 * consume  BOOTSTRAP TOPIC GROUP COUNT TIMEOUT_MS
 * topics   BOOTSTRAP                          (prints "topics N"; fails on an authentication error)
 * scram-set  BOOTSTRAP USER PASSWORD MECHANISM (AlterUserScramCredentials, 4096 iterations)
 * scram-list BOOTSTRAP                        (prints "U user mechanism iterations" per credential)
 * </pre>
 *
 * Any mode may end with "--command-config FILE": client properties (security.protocol,
 * ssl.*, sasl.* ...) added to every client the mode creates, as Kafka's own tools take them.
 *
 * Records produced are key "k-{i}", value "v-{i}", header "seq" = "{i}". The consumer
 * prints "R partition offset key value seq" per record, then commits synchronously.
 */
public final class ClientCheck {
  private ClientCheck() {}

  /** Properties of --command-config, added to every client. */
  private static final Properties EXTRA = new Properties();

  public static void main(String[] argv) throws Exception {
    String[] args = argv;
    int at = Arrays.asList(argv).indexOf("--command-config");
    if (at >= 0) {
      try (InputStream in = new FileInputStream(argv[at + 1])) {
        EXTRA.load(in);
      }
      args = Arrays.copyOfRange(argv, 0, at);
    }
    switch (args[0]) {
      case "create" -> create(args[1], args[2], Integer.parseInt(args[3]));
      case "produce" -> produce(args[1], args[2], Integer.parseInt(args[3]), args[4], Boolean.parseBoolean(args[5]));
      case "consume" -> consume(args[1], args[2], args[3], Integer.parseInt(args[4]), Long.parseLong(args[5]));
      case "topics" -> topics(args[1]);
      case "scram-set" -> scramSet(args[1], args[2], args[3], args[4]);
      case "scram-list" -> scramList(args[1]);
      default -> throw new IllegalArgumentException("unknown mode " + args[0]);
    }
  }

  private static Properties props(String bootstrap) {
    Properties p = new Properties();
    p.putAll(EXTRA);
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    return p;
  }

  private static void topics(String bootstrap) throws Exception {
    Properties p = props(bootstrap);
    p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
    try (Admin admin = Admin.create(p)) {
      int n = admin.listTopics().names().get(30, TimeUnit.SECONDS).size();
      System.out.println("topics " + n);
    }
  }

  private static void scramSet(String bootstrap, String user, String password, String mechanism) throws Exception {
    try (Admin admin = Admin.create(props(bootstrap))) {
      ScramCredentialInfo info = new ScramCredentialInfo(ScramMechanism.fromMechanismName(mechanism), 4096);
      admin.alterUserScramCredentials(List.of(new UserScramCredentialUpsertion(user, info, password))).all().get();
      System.out.println("set " + user + " " + mechanism);
    }
  }

  private static void scramList(String bootstrap) throws Exception {
    try (Admin admin = Admin.create(props(bootstrap))) {
      Map<String, UserScramCredentialsDescription> all =
          new TreeMap<>(admin.describeUserScramCredentials().all().get());
      for (UserScramCredentialsDescription d : all.values()) {
        for (ScramCredentialInfo info : d.credentialInfos()) {
          System.out.println("U " + d.name() + " " + info.mechanism().mechanismName() + " " + info.iterations());
        }
      }
    }
  }

  private static void create(String bootstrap, String topic, int partitions) throws Exception {
    Properties p = props(bootstrap);
    try (Admin admin = Admin.create(p)) {
      admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all().get();
      // Apache Kafka (KRaft) answers once the controller has committed the topic; the
      // broker may list it a moment later. streamcore lists it at once.
      long deadline = System.nanoTime() + Duration.ofSeconds(15).toNanos();
      int seen = -1;
      while (true) {
        try {
          seen = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().size();
        } catch (ExecutionException e) {
          if (!(e.getCause() instanceof UnknownTopicOrPartitionException) || System.nanoTime() > deadline) {
            throw e;
          }
        }
        if (seen == partitions || System.nanoTime() > deadline) {
          break;
        }
        Thread.sleep(50);
      }
      System.out.println("created " + topic + " " + seen);
    }
  }

  private static void produce(String bootstrap, String topic, int count, String compression, boolean idempotent)
      throws Exception {
    Properties p = props(bootstrap);
    p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, compression);
    if (!idempotent) {
      // Idempotence is the client's default (3.0+); only turning it off is explicit.
      p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "false");
      p.put(ProducerConfig.ACKS_CONFIG, "1");
    }
    p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    List<Future<RecordMetadata>> pending = new ArrayList<>(count);
    try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
      for (int i = 0; i < count; i++) {
        ProducerRecord<byte[], byte[]> r = new ProducerRecord<>(topic, bytes("k-" + i), bytes("v-" + i));
        r.headers().add("seq", bytes(Integer.toString(i)));
        pending.add(producer.send(r));
      }
      producer.flush();
      for (Future<RecordMetadata> f : pending) {
        f.get();
      }
    }
    System.out.println("produced " + count);
  }

  private static void consume(String bootstrap, String topic, String group, int count, long timeoutMs) {
    Properties p = props(bootstrap);
    p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    int seen = 0;
    long deadline = System.currentTimeMillis() + timeoutMs;
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p)) {
      consumer.subscribe(Collections.singletonList(topic));
      while (seen < count && System.currentTimeMillis() < deadline) {
        ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(200));
        for (ConsumerRecord<byte[], byte[]> r : records) {
          Header h = r.headers().lastHeader("seq");
          String seq = h == null ? "-" : new String(h.value(), StandardCharsets.UTF_8);
          System.out.println("R " + r.partition() + " " + r.offset() + " " + str(r.key()) + " " + str(r.value()) + " " + seq);
          seen++;
        }
      }
      consumer.commitSync();
    }
    System.out.println("consumed " + seen);
  }

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  private static String str(byte[] b) {
    return b == null ? "null" : new String(b, StandardCharsets.UTF_8);
  }
}
