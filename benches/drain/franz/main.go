// Command franz drains one partition from offset 0 with franz-go's kgo client until it has seen
// -records records, touching every record's value, then prints one summary line for the drain harness.
//
// Fetch settings are flags so the harness gives every client the same ones. CRC validation stays at
// kgo's default, which is on (kgo.DisableFetchCRCValidation is the opt-out and is never set here).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "bootstrap server")
	topic := flag.String("topic", "", "topic")
	records := flag.Int64("records", 0, "records to read before exiting")
	minBytes := flag.Int("fetch-min-bytes", 1, "fetch.min.bytes")
	maxWaitMs := flag.Int("fetch-max-wait-ms", 500, "fetch.max.wait.ms")
	maxBytes := flag.Int("fetch-max-bytes", 50*1024*1024, "fetch.max.bytes")
	maxPartitionBytes := flag.Int("max-partition-fetch-bytes", 1024*1024, "max.partition.fetch.bytes")
	flag.Parse()
	if *topic == "" || *records <= 0 {
		fmt.Fprintln(os.Stderr, "franz: -topic and -records are required")
		os.Exit(2)
	}

	started := time.Now()
	client, err := kgo.NewClient(
		kgo.SeedBrokers(*brokers),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			*topic: {0: kgo.NewOffset().AtStart()},
		}),
		kgo.FetchMinBytes(int32(*minBytes)),
		kgo.FetchMaxWait(time.Duration(*maxWaitMs)*time.Millisecond),
		kgo.FetchMaxBytes(int32(*maxBytes)),
		kgo.FetchMaxPartitionBytes(int32(*maxPartitionBytes)),
		kgo.DisableClientMetrics(),
	)
	if err != nil {
		fmt.Fprintf(os.Stderr, "franz: client: %v\n", err)
		os.Exit(1)
	}
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var count, valueBytes int64
	var first time.Time
	next := int64(0)
	for count < *records {
		fetches := client.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			fmt.Fprintf(os.Stderr, "franz: timed out after %d records\n", count)
			os.Exit(1)
		}
		fetches.EachError(func(t string, p int32, err error) {
			fmt.Fprintf(os.Stderr, "franz: %s/%d: %v\n", t, p, err)
			os.Exit(1)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			if first.IsZero() {
				first = time.Now()
			}
			if r.Offset != next {
				fmt.Fprintf(os.Stderr, "franz: expected offset %d, got %d\n", next, r.Offset)
				os.Exit(1)
			}
			next = r.Offset + 1
			valueBytes += int64(len(r.Value))
			count++
		})
	}
	done := time.Now()
	fmt.Printf("DRAIN records=%d value_bytes=%d total_s=%.6f first_to_last_s=%.6f\n",
		count, valueBytes, done.Sub(started).Seconds(), done.Sub(first).Seconds())
}
