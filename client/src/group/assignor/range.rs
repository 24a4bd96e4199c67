//! Java's `RangeAssignor` (`range`): per topic, partitions in numeric order
//! are cut into contiguous ranges over the subscribed members in member
//! order; the first `partitions % members` members get one extra.

use std::collections::BTreeMap;

use kafee_protocol::consumer_protocol::Assignment;

use super::{sorted_members, to_assignment, AssignError, Assignor, MemberId, MemberSubscription};

/// The `range` assignor. See the [module docs](super) for ordering rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct RangeAssignor;

impl Assignor for RangeAssignor {
    fn name(&self) -> &'static str {
        "range"
    }

    fn assign(
        &self,
        members: &[MemberSubscription],
        partitions_per_topic: &BTreeMap<String, i32>,
    ) -> Result<BTreeMap<MemberId, Assignment>, AssignError> {
        let sorted = sorted_members(members, partitions_per_topic)?;
        let mut pairs: BTreeMap<&str, BTreeMap<String, Vec<i32>>> = sorted
            .iter()
            .map(|m| (m.member_id.as_str(), BTreeMap::new()))
            .collect();
        for (topic, &count) in partitions_per_topic {
            if count <= 0 {
                continue;
            }
            let consumers: Vec<&str> = sorted
                .iter()
                .filter(|m| m.subscription.topics.iter().any(|t| t == topic))
                .map(|m| m.member_id.as_str())
                .collect();
            if consumers.is_empty() {
                continue;
            }
            // count > 0 and consumers.len() > 0 here; both fit in usize.
            let count = count as usize;
            let per_consumer = count / consumers.len();
            let with_extra = count % consumers.len();
            for (i, consumer) in consumers.iter().enumerate() {
                let start = per_consumer * i + i.min(with_extra);
                let len = per_consumer + usize::from(i < with_extra);
                if len == 0 {
                    continue;
                }
                if let Some(assigned) = pairs.get_mut(consumer) {
                    // start + len <= count <= i32::MAX.
                    assigned
                        .entry(topic.clone())
                        .or_default()
                        .extend((start..start + len).map(|p| p as i32));
                }
            }
        }
        Ok(pairs
            .into_iter()
            .map(|(m, p)| (m.to_string(), to_assignment(p)))
            .collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::tests::*;
    use super::*;
    use proptest::prelude::*;

    /// RangeAssignor's own doc example: C0 gets the first two partitions of each topic.
    #[test]
    fn two_consumers_two_topics_three_partitions() {
        let members = [
            member("c1", None, &["t0", "t1"]),
            member("c0", None, &["t0", "t1"]),
        ];
        let result = RangeAssignor
            .assign(&members, &counts(&[("t0", 3), ("t1", 3)]))
            .unwrap();
        assert_eq!(
            render(&result),
            expect(&[("c0", "t0[0, 1] t1[0, 1]"), ("c1", "t0[2] t1[2]")])
        );
    }

    #[test]
    fn more_consumers_than_partitions_leaves_the_last_empty() {
        let members = [
            member("c0", None, &["t"]),
            member("c1", None, &["t"]),
            member("c2", None, &["t"]),
        ];
        let result = RangeAssignor
            .assign(&members, &counts(&[("t", 2)]))
            .unwrap();
        assert_eq!(
            render(&result),
            expect(&[("c0", "t[0]"), ("c1", "t[1]"), ("c2", "")])
        );
    }

    #[test]
    fn ranges_are_computed_per_topic_over_its_subscribers() {
        let members = [
            member("c0", None, &["t1"]),
            member("c1", None, &["t1", "t2"]),
        ];
        let result = RangeAssignor
            .assign(&members, &counts(&[("t1", 3), ("t2", 2)]))
            .unwrap();
        assert_eq!(
            render(&result),
            expect(&[("c0", "t1[0, 1]"), ("c1", "t1[2] t2[0, 1]")])
        );
    }

    /// Static membership keeps the assignment across member id changes: the
    /// order follows group.instance.id, not member id (Java's
    /// testStaticMemberRangeAssignmentPersistent idea).
    #[test]
    fn static_members_are_ordered_by_instance_id() {
        let members = [
            member("consumer-a", Some("i1"), &["t"]),
            member("consumer-b", Some("i0"), &["t"]),
            member("consumer-0", None, &["t"]),
        ];
        let result = RangeAssignor
            .assign(&members, &counts(&[("t", 5)]))
            .unwrap();
        assert_eq!(
            render(&result),
            expect(&[
                ("consumer-b", "t[0, 1]"),
                ("consumer-a", "t[2, 3]"),
                ("consumer-0", "t[4]")
            ])
        );
    }

    #[test]
    fn unknown_and_empty_topics_are_skipped() {
        let members = [member("c0", None, &["known", "unknown", "empty"])];
        let result = RangeAssignor
            .assign(&members, &counts(&[("known", 1), ("empty", 0)]))
            .unwrap();
        assert_eq!(render(&result), expect(&[("c0", "known[0]")]));
    }

    /// Three consumers, one of them also on a second topic (Java's
    /// testMultipleConsumersMixedTopics shape).
    #[test]
    fn multiple_consumers_mixed_topics() {
        let members = [
            member("consumer1", None, &["topic1"]),
            member("consumer2", None, &["topic1", "topic2"]),
            member("consumer3", None, &["topic1"]),
        ];
        let result = RangeAssignor
            .assign(&members, &counts(&[("topic1", 3), ("topic2", 2)]))
            .unwrap();
        assert_eq!(
            render(&result),
            expect(&[
                ("consumer1", "topic1[0]"),
                ("consumer2", "topic1[1] topic2[0, 1]"),
                ("consumer3", "topic1[2]"),
            ])
        );
    }

    #[test]
    fn a_member_with_no_topics_gets_an_empty_assignment() {
        let members = [member("c0", None, &[]), member("c1", None, &["t"])];
        let result = RangeAssignor
            .assign(&members, &counts(&[("t", 2)]))
            .unwrap();
        assert_eq!(render(&result), expect(&[("c0", ""), ("c1", "t[0, 1]")]));
        assert!(RangeAssignor
            .assign(&[], &counts(&[("t", 2)]))
            .unwrap()
            .is_empty());
    }

    proptest! {
        #[test]
        fn every_partition_once_and_per_topic_balanced((members, counts) in group()) {
            let result = RangeAssignor.assign(&members, &counts).unwrap();
            check_complete_and_exclusive(&members, &counts, &result)?;
            for topic in counts.keys() {
                let per_member: Vec<usize> = members
                    .iter()
                    .filter(|m| m.subscription.topics.contains(topic))
                    .map(|m| result[&m.member_id].partitions().filter(|(t, _)| t == topic).count())
                    .collect();
                if let (Some(min), Some(max)) = (per_member.iter().min(), per_member.iter().max()) {
                    prop_assert!(max - min <= 1, "topic {} counts {:?}", topic, per_member);
                }
            }
            // Independent of the order members arrive in.
            let mut reversed = members.clone();
            reversed.reverse();
            prop_assert_eq!(RangeAssignor.assign(&reversed, &counts).unwrap(), result);
        }
    }
}
