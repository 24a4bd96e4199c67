"""Commits some and aborts some transactions with librdkafka (confluent-kafka), for kafee's peer tests.

    python transactions.py BOOTSTRAP TOPIC PARTITIONS TRANSACTIONS PER_PARTITION

Runs TRANSACTIONS transactions with one transactional producer; transaction n (from 0) writes
PER_PARTITION records to every partition and is committed when n is even, aborted when n is odd. The
records of an aborted transaction are flushed (acknowledged, so they are in the log) before the abort.
A last committed transaction writes one record `end` to every partition, so a reader knows it has seen
the whole log of each partition once it reads `end` there.

Prints one line per acknowledged record, in produce order: `PARTITION OFFSET COMMITTED VALUE` with
COMMITTED 1 or 0 (VALUE has no spaces). Exits non-zero on any error.
"""

import sys
import uuid

from confluent_kafka import Producer


def main():
    bootstrap, topic = sys.argv[1], sys.argv[2]
    partitions, transactions, per_partition = (int(a) for a in sys.argv[3:6])
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": f"kafee-peers-{uuid.uuid4()}",
            "linger.ms": 5,
            "compression.type": "lz4",
        }
    )
    producer.init_transactions(30)
    lines = []
    failures = []

    def produce_all(values, committed):
        acked = {}

        def on_delivery(err, msg):
            if err is not None:
                failures.append(str(err))
            else:
                acked[(msg.partition(), msg.value())] = msg.offset()

        for partition, value in values:
            producer.produce(topic, value=value.encode(), key=b"k", partition=partition, on_delivery=on_delivery)
        if producer.flush(30):
            failures.append("records not acknowledged within 30 s")
        for partition, value in values:
            offset = acked.get((partition, value.encode()))
            if offset is not None:
                lines.append(f"{partition} {offset} {1 if committed else 0} {value}")

    for n in range(transactions):
        committed = n % 2 == 0
        producer.begin_transaction()
        values = [
            (p, f"t{n}-{'commit' if committed else 'abort'}-p{p}-{i}")
            for p in range(partitions)
            for i in range(per_partition)
        ]
        produce_all(values, committed)
        if committed:
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)
    producer.begin_transaction()
    produce_all([(p, "end") for p in range(partitions)], True)
    producer.commit_transaction(30)

    if failures:
        for f in failures:
            print(f, file=sys.stderr)
        sys.exit(1)
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
