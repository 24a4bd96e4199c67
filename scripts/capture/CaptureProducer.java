// Produces the records read from stdin with Apache Kafka's Java producer, for
// scripts/capture-fixtures. Run with the Kafka jars on the classpath:
//   java -cp "$KAFKA_HOME/libs/*" CaptureProducer.java BOOTSTRAP TOPIC CODEC plain|txn < records.tsv
// Each stdin line: timestamp, key hex or "-", value hex or "-", then headers as
// name=hex or name=- (tab separated). In txn mode the first 3 records are
// committed, the next 2 aborted, the rest committed, one transaction each.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Properties;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class CaptureProducer {
    static byte[] hex(String s) {
        return s.equals("-") ? null : HexFormat.of().parseHex(s);
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1], codec = args[2], mode = args[3];
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("compression.type", codec);
        p.put("linger.ms", "500");
        p.put("batch.size", String.valueOf(1 << 20));
        p.put("acks", "all");
        if (mode.equals("txn")) {
            p.put("transactional.id", "kafee-capture-" + topic);
        }
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        for (String line; (line = in.readLine()) != null; ) {
            if (line.isEmpty()) continue;
            String[] f = line.split("\t", -1);
            List<org.apache.kafka.common.header.Header> headers = new ArrayList<>();
            for (int i = 3; i < f.length; i++) {
                int eq = f[i].indexOf('=');
                headers.add(new RecordHeader(f[i].substring(0, eq), hex(f[i].substring(eq + 1))));
            }
            records.add(new ProducerRecord<>(topic, 0, Long.parseLong(f[0]), hex(f[1]), hex(f[2]), headers));
        }
        try (KafkaProducer<byte[], byte[]> producer =
                new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
            if (mode.equals("txn")) {
                producer.initTransactions();
                int[][] groups = {{0, 3}, {3, 5}, {5, records.size()}};
                for (int g = 0; g < groups.length; g++) {
                    producer.beginTransaction();
                    for (int i = groups[g][0]; i < groups[g][1]; i++) producer.send(records.get(i)).get();
                    if (g == 1) producer.abortTransaction(); else producer.commitTransaction();
                }
            } else {
                for (ProducerRecord<byte[], byte[]> r : records) producer.send(r);
                producer.flush();
            }
        }
    }
}
