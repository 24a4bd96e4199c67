use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafee_protocol::records::{
    AbortedTransaction, Compression, ControlRecord, ControlRecordType, RecordBatchBuilder,
};

fn marker(kind: ControlRecordType) -> ControlRecord {
    ControlRecord {
        version: 0,
        kind,
        coordinator_epoch: Some(0),
    }
}

use super::*;

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

fn batch(base: i64, n: usize) -> Bytes {
    let mut b = RecordBatchBuilder::new(base);
    for i in 0..n {
        let v = format!("v{}", base + i as i64);
        b.append(1_000, None, Some(v.as_bytes()), &[]).unwrap();
    }
    b.build().unwrap()
}

fn concat(parts: &[Bytes]) -> Bytes {
    let mut out = BytesMut::new();
    for p in parts {
        out.extend_from_slice(p);
    }
    out.freeze()
}

fn plan_one(c: &mut Cursors, now: Instant) -> PlannedPartition {
    let plan = c.plan(now, |_| Some((1, 0)), |_| false);
    assert_eq!(plan.by_leader.len(), 1);
    plan.by_leader[&1][0].clone()
}

fn answer(records: Bytes) -> PartitionAnswer {
    PartitionAnswer {
        error_code: 0,
        high_watermark: 100,
        last_stable_offset: 100,
        aborted_transactions: vec![],
        records: Some(records),
    }
}

fn offsets(f: &FetchedPartition) -> Vec<i64> {
    f.records().map(|r| r.unwrap().offset()).collect()
}

#[test]
fn records_below_fetch_offset_in_first_batch_are_skipped() {
    let mut c = Cursors::new(FetchConfig::default());
    c.assign(tp(), Position::Offset(3));
    let now = Instant::now();
    let p = plan_one(&mut c, now);
    assert_eq!(p.fetch_offset, 3);
    let Applied::Data(f) = c.apply(&p, answer(concat(&[batch(0, 5), batch(5, 2)])), now) else {
        panic!("expected data");
    };
    assert_eq!(offsets(&f), vec![3, 4, 5, 6]);
    assert_eq!(f.next_offset, 7);
    assert_eq!(c.position(&tp()), Some(Position::Offset(7)));
}

#[test]
fn truncated_tail_is_refetched() {
    let mut c = Cursors::new(FetchConfig::default());
    c.assign(tp(), Position::Offset(0));
    let now = Instant::now();
    let p = plan_one(&mut c, now);
    let second = batch(3, 3);
    let set = concat(&[batch(0, 3), second.slice(..second.len() - 5)]);
    let Applied::Data(f) = c.apply(&p, answer(set), now) else {
        panic!("expected data")
    };
    assert_eq!(offsets(&f), vec![0, 1, 2]);
    assert_eq!(c.position(&tp()), Some(Position::Offset(3)));
}

#[test]
fn stale_response_is_dropped() {
    let mut c = Cursors::new(FetchConfig::default());
    c.assign(tp(), Position::Offset(0));
    let now = Instant::now();
    let p = plan_one(&mut c, now);
    // Revoked and re-assigned while the fetch was in flight.
    c.revoke(&tp());
    c.assign(tp(), Position::Offset(0));
    assert!(matches!(
        c.apply(&p, answer(batch(0, 3)), now),
        Applied::Nothing
    ));
    assert_eq!(c.position(&tp()), Some(Position::Offset(0)));
    // A seek also makes it stale.
    let p = plan_one(&mut c, now);
    c.seek(&tp(), Position::Offset(2));
    assert!(matches!(
        c.apply(&p, answer(batch(0, 3)), now),
        Applied::Nothing
    ));
    assert_eq!(c.position(&tp()), Some(Position::Offset(2)));
}

#[test]
fn paused_and_in_flight_partitions_are_not_planned() {
    let mut c = Cursors::new(FetchConfig::default());
    c.assign(tp(), Position::Offset(0));
    c.assign(TopicPartition::new("t", 1), Position::Offset(0));
    c.set_paused(&tp(), true);
    let now = Instant::now();
    let plan = c.plan(now, |_| Some((1, 0)), |_| false);
    assert_eq!(plan.by_leader[&1].len(), 1);
    assert_eq!(plan.by_leader[&1][0].tp.partition, 1);
    // Partition 1 is in flight now: nothing more to plan.
    let plan = c.plan(now, |_| Some((1, 0)), |_| false);
    assert!(plan.by_leader.is_empty());
}

#[test]
fn corrupt_batch_is_retried_then_reported() {
    let config = FetchConfig {
        corrupt_retries: 2,
        ..FetchConfig::default()
    };
    let backoff = config.retry_backoff;
    let mut c = Cursors::new(config);
    c.assign(tp(), Position::Offset(0));
    let mut bad = BytesMut::from(&batch(0, 3)[..]);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let bad = bad.freeze();
    let mut now = Instant::now();
    for _ in 0..2 {
        let p = plan_one(&mut c, now);
        assert!(matches!(
            c.apply(&p, answer(bad.clone()), now),
            Applied::Nothing
        ));
        assert_eq!(c.position(&tp()), Some(Position::Offset(0)));
        // Backing off: not planned until the backoff passed.
        assert!(c
            .plan(now, |_| Some((1, 0)), |_| false)
            .by_leader
            .is_empty());
        now += backoff;
    }
    let p = plan_one(&mut c, now);
    match c.apply(&p, answer(bad), now) {
        Applied::Error(e) => assert!(e.to_string().starts_with("fetch t/0 at offset 0: "), "{e}"),
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(c.position(&tp()), Some(Position::Failed));
}

#[test]
fn good_batches_before_a_corrupt_one_are_delivered() {
    let mut c = Cursors::new(FetchConfig::default());
    c.assign(tp(), Position::Offset(0));
    let mut bad = BytesMut::from(&batch(2, 2)[..]);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let now = Instant::now();
    let p = plan_one(&mut c, now);
    let Applied::Data(f) = c.apply(&p, answer(concat(&[batch(0, 2), bad.freeze()])), now) else {
        panic!("expected data")
    };
    assert_eq!(offsets(&f), vec![0, 1]);
    assert_eq!(c.position(&tp()), Some(Position::Offset(2)));
}

#[test]
fn out_of_range_resets_per_policy_or_fails() {
    let now = Instant::now();
    let mut c = Cursors::new(FetchConfig::default());
    c.assign(tp(), Position::Offset(50));
    let p = plan_one(&mut c, now);
    let a = PartitionAnswer {
        error_code: 1,
        ..answer(Bytes::new())
    };
    assert!(matches!(
        c.apply(&p, a.clone(), now),
        Applied::Reset {
            offset: 50,
            to: ResetTo::Earliest,
            ..
        }
    ));
    let plan = c.plan(now, |_| Some((1, 0)), |_| false);
    assert_eq!(plan.resets.len(), 1);
    let (_, _, epoch) = plan.resets[0].clone();
    c.reset_done(&tp(), epoch, 7);
    assert_eq!(c.position(&tp()), Some(Position::Offset(7)));

    let mut c = Cursors::new(FetchConfig {
        offset_reset: OffsetReset::None,
        ..FetchConfig::default()
    });
    c.assign(tp(), Position::Offset(50));
    let p = plan_one(&mut c, now);
    match c.apply(&p, a, now) {
        Applied::Error(e) => assert_eq!(
            e.to_string(),
            "fetch t/0: offset 50 out of range and auto.offset.reset is none"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn leader_change_keeps_offset_and_asks_for_metadata() {
    let mut c = Cursors::new(FetchConfig::default());
    c.assign(tp(), Position::Offset(5));
    let now = Instant::now();
    let p = plan_one(&mut c, now);
    let a = PartitionAnswer {
        error_code: 6,
        ..answer(Bytes::new())
    };
    assert!(matches!(c.apply(&p, a, now), Applied::RefreshMetadata));
    assert_eq!(c.position(&tp()), Some(Position::Offset(5)));
    let later = now + Duration::from_secs(1);
    let plan = c.plan(later, |_| Some((2, 1)), |_| false);
    assert_eq!(plan.by_leader[&2][0].fetch_offset, 5);
    assert_eq!(plan.by_leader[&2][0].leader_epoch, 1);
}

#[test]
fn read_committed_skips_aborted_data_and_markers() {
    let config = FetchConfig {
        isolation: IsolationLevel::ReadCommitted,
        ..FetchConfig::default()
    };
    let mut c = Cursors::new(config);
    c.assign(tp(), Position::Offset(0));
    // Producer 7: aborted transaction at 0..2 with its marker at 2; then
    // producer 8 commits 3..4 with its marker at 5.
    let mut aborted = RecordBatchBuilder::new(0)
        .producer(7, 0, 0)
        .transactional(true);
    aborted.append(1, None, Some(b"a0"), &[]).unwrap();
    aborted.append(1, None, Some(b"a1"), &[]).unwrap();
    let mut abort_marker = RecordBatchBuilder::new(2)
        .producer(7, 0, 2)
        .transactional(true);
    abort_marker
        .append_control(1, marker(ControlRecordType::Abort))
        .unwrap();
    let mut committed = RecordBatchBuilder::new(3)
        .producer(8, 0, 0)
        .transactional(true);
    committed.append(1, None, Some(b"c3"), &[]).unwrap();
    committed.append(1, None, Some(b"c4"), &[]).unwrap();
    let mut commit_marker = RecordBatchBuilder::new(5)
        .producer(8, 0, 2)
        .transactional(true);
    commit_marker
        .append_control(1, marker(ControlRecordType::Commit))
        .unwrap();
    let set = concat(&[
        aborted.build().unwrap(),
        abort_marker.build().unwrap(),
        committed.build().unwrap(),
        commit_marker.build().unwrap(),
    ]);
    let now = Instant::now();
    let p = plan_one(&mut c, now);
    let mut a = answer(set.clone());
    a.aborted_transactions = vec![AbortedTransaction {
        producer_id: 7,
        first_offset: 0,
    }];
    let Applied::Data(f) = c.apply(&p, a, now) else {
        panic!("expected data")
    };
    assert_eq!(offsets(&f), vec![3, 4]);
    assert_eq!(c.position(&tp()), Some(Position::Offset(6)));

    // read_uncommitted: all data, never a control record.
    let mut c = Cursors::new(FetchConfig::default());
    c.assign(tp(), Position::Offset(0));
    let p = plan_one(&mut c, now);
    let Applied::Data(f) = c.apply(&p, answer(set), now) else {
        panic!("expected data")
    };
    assert_eq!(offsets(&f), vec![0, 1, 3, 4]);
}

#[test]
fn compressed_batches_decode() {
    let mut c = Cursors::new(FetchConfig::default());
    c.assign(tp(), Position::Offset(0));
    let mut b = RecordBatchBuilder::new(0).compression(Compression::Lz4);
    for i in 0..10 {
        b.append(1, Some(b"k"), Some(format!("value-{i}").as_bytes()), &[])
            .unwrap();
    }
    let now = Instant::now();
    let p = plan_one(&mut c, now);
    let Applied::Data(f) = c.apply(&p, answer(b.build().unwrap()), now) else {
        panic!("expected data")
    };
    assert_eq!(offsets(&f), (0..10).collect::<Vec<_>>());
}

#[test]
fn control_only_response_advances_without_data() {
    let mut c = Cursors::new(FetchConfig::default());
    c.assign(tp(), Position::Offset(0));
    let mut commit = RecordBatchBuilder::new(0)
        .producer(8, 0, 0)
        .transactional(true);
    commit
        .append_control(1, marker(ControlRecordType::Commit))
        .unwrap();
    let now = Instant::now();
    let p = plan_one(&mut c, now);
    assert!(matches!(
        c.apply(&p, answer(commit.build().unwrap()), now),
        Applied::Nothing
    ));
    assert_eq!(c.position(&tp()), Some(Position::Offset(1)));
}
