"""A librdkafka (confluent-kafka) consumer group member for kafee's mixed-group tests.

    python group_member.py BOOTSTRAP GROUP TOPIC

Joins GROUP with the `range` assignor, subscribed to TOPIC, reads from the earliest offset when the group
has no committed one, and commits each record's next offset synchronously after printing it. Prints
one line per event on stdout:

    assigned P,P,...       the partitions of TOPIC assigned in a new generation (empty: none)
    revoked P,P,...        partitions revoked
    record P OFFSET VALUE  a record (VALUE as text)
    error TEXT             a consumer error
    closed                 left the group (LeaveGroup sent) and closed

Reads commands on stdin: `leave` (or end of input) closes the consumer, which leaves the group.
"""

import select
import sys

from confluent_kafka import Consumer, KafkaException


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def partitions(tps):
    return ",".join(str(tp.partition) for tp in sorted(tps, key=lambda tp: tp.partition))


def main():
    bootstrap, group, topic = sys.argv[1], sys.argv[2], sys.argv[3]
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": "kafee-peers-librdkafka",
            "partition.assignment.strategy": "range",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 500,
            "fetch.wait.max.ms": 100,
        }
    )
    consumer.subscribe(
        [topic],
        on_assign=lambda c, tps: say(f"assigned {partitions(tps)}"),
        on_revoke=lambda c, tps: say(f"revoked {partitions(tps)}"),
    )
    while True:
        readable, _, _ = select.select([sys.stdin], [], [], 0)
        if readable:
            command = sys.stdin.readline()
            if command == "" or command.strip() == "leave":
                break
        msg = consumer.poll(0.1)
        if msg is None:
            continue
        if msg.error():
            say(f"error {msg.error()}")
            continue
        value = (msg.value() or b"").decode("utf-8", "replace")
        say(f"record {msg.partition()} {msg.offset()} {value}")
        try:
            consumer.commit(message=msg, asynchronous=False)
        except KafkaException as e:
            # A commit refused during a rebalance: the next owner reads the record again.
            say(f"error commit {e}")
    consumer.close()
    say("closed")


if __name__ == "__main__":
    main()
