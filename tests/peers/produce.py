"""Produces records with librdkafka (confluent-kafka) for kafee's peer tests.

    python produce.py BOOTSTRAP TOPIC < spec

Each line of the spec on stdin is one record, tab-separated:

    CODEC  PARTITION  KEY  VALUE  HEADERS

CODEC is a librdkafka compression.type (none, gzip, snappy, lz4, zstd); KEY and VALUE are hex, or `-`
for null; HEADERS is empty or `;`-separated `KEYHEX=VALUEHEX` pairs (VALUEHEX `-` for a null value).
Records are produced in spec order, one producer per run of equal codecs (flushed before the next run, so
every batch carries one codec). After all are acknowledged (acks=all), prints one line per record, in
spec order: `INDEX PARTITION OFFSET`. Exits non-zero if any delivery failed.
"""

import sys

from confluent_kafka import Producer


def unhex(field):
    return None if field == "-" else bytes.fromhex(field)


def parse(line):
    codec, partition, key, value, headers = line.rstrip("\n").split("\t")
    hs = []
    if headers:
        for pair in headers.split(";"):
            k, v = pair.split("=")
            hs.append((bytes.fromhex(k).decode("utf-8"), unhex(v)))
    return codec, int(partition), unhex(key), unhex(value), hs


def main():
    bootstrap, topic = sys.argv[1], sys.argv[2]
    records = [parse(line) for line in sys.stdin if line.strip()]
    delivered = {}
    failures = []

    def report(index):
        def on_delivery(err, msg):
            if err is not None:
                failures.append(f"record {index}: {err}")
            else:
                delivered[index] = (msg.partition(), msg.offset())

        return on_delivery

    i = 0
    while i < len(records):
        codec = records[i][0]
        producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "compression.type": codec,
                "acks": "all",
                "linger.ms": 20,
                "enable.idempotence": False,
                # One request in flight per partition: the log keeps spec order.
                "max.in.flight.requests.per.connection": 1,
            }
        )
        while i < len(records) and records[i][0] == codec:
            _, partition, key, value, headers = records[i]
            producer.produce(
                topic,
                value=value,
                key=key,
                partition=partition,
                headers=headers or None,
                on_delivery=report(i),
            )
            i += 1
        remaining = producer.flush(30)
        if remaining:
            failures.append(f"{remaining} records of codec {codec} not delivered within 30 s")
            break
    if failures:
        for f in failures:
            print(f, file=sys.stderr)
        sys.exit(1)
    for index in range(len(records)):
        partition, offset = delivered[index]
        print(index, partition, offset)


if __name__ == "__main__":
    main()
