//! Java's `RoundRobinAssignor` (`roundrobin`): all partitions of all
//! subscribed topics, topics sorted and partitions ascending, are dealt one at
//! a time to the members in member order, cycling; a member not subscribed to
//! a partition's topic is skipped.

use std::collections::{BTreeMap, BTreeSet};

use kafee_protocol::consumer_protocol::Assignment;

use super::{
    java_cmp, sorted_members, to_assignment, AssignError, Assignor, MemberId, MemberSubscription,
};

/// The `roundrobin` assignor. See the [module docs](super) for ordering rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobinAssignor;

impl Assignor for RoundRobinAssignor {
    fn name(&self) -> &'static str {
        "roundrobin"
    }

    fn assign(
        &self,
        members: &[MemberSubscription],
        partitions_per_topic: &BTreeMap<String, i32>,
    ) -> Result<BTreeMap<MemberId, Assignment>, AssignError> {
        let sorted = sorted_members(members, partitions_per_topic)?;
        let mut pairs: Vec<BTreeMap<String, Vec<i32>>> = vec![BTreeMap::new(); sorted.len()];

        let mut topics: Vec<&str> = sorted
            .iter()
            .flat_map(|m| m.subscription.topics.iter().map(String::as_str))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        topics.sort_by(|a, b| java_cmp(a, b));

        let mut next = 0usize;
        for topic in topics {
            let Some(&count) = partitions_per_topic.get(topic) else {
                continue;
            };
            for partition in 0..count.max(0) {
                // Some member subscribes to `topic` (it came from a
                // subscription), so this finds one within one full cycle.
                let mut tries = 0;
                while !sorted[next].subscription.topics.iter().any(|t| t == topic) {
                    next = (next + 1) % sorted.len();
                    tries += 1;
                    debug_assert!(tries <= sorted.len());
                }
                pairs[next]
                    .entry(topic.to_string())
                    .or_default()
                    .push(partition);
                next = (next + 1) % sorted.len();
            }
        }
        Ok(sorted
            .iter()
            .zip(pairs)
            .map(|(m, p)| (m.member_id.clone(), to_assignment(p)))
            .collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::tests::*;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn two_consumers_two_topics_three_partitions() {
        let members = [
            member("c1", None, &["t1", "t2"]),
            member("c0", None, &["t1", "t2"]),
        ];
        let result = RoundRobinAssignor
            .assign(&members, &counts(&[("t1", 3), ("t2", 3)]))
            .unwrap();
        assert_eq!(
            render(&result),
            expect(&[("c0", "t1[0, 2] t2[1]"), ("c1", "t1[1] t2[0, 2]")])
        );
    }

    /// RoundRobinAssignor's doc example with unequal subscriptions.
    #[test]
    fn members_not_subscribed_are_skipped() {
        let members = [
            member("C0", None, &["t0"]),
            member("C1", None, &["t0", "t1"]),
            member("C2", None, &["t0", "t1", "t2"]),
        ];
        let result = RoundRobinAssignor
            .assign(&members, &counts(&[("t0", 1), ("t1", 2), ("t2", 3)]))
            .unwrap();
        assert_eq!(
            render(&result),
            expect(&[
                ("C0", "t0[0]"),
                ("C1", "t1[0]"),
                ("C2", "t1[1] t2[0, 1, 2]")
            ])
        );
    }

    #[test]
    fn mixed_subscriptions_continue_the_cycle() {
        let members = [
            member("consumer1", None, &["topic1"]),
            member("consumer2", None, &["topic1", "topic2"]),
            member("consumer3", None, &["topic1"]),
        ];
        let result = RoundRobinAssignor
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
    fn static_members_lead_the_cycle() {
        let members = [
            member("m-0", None, &["t"]),
            member("m-1", Some("z"), &["t"]),
            member("m-2", Some("a"), &["t"]),
        ];
        let result = RoundRobinAssignor
            .assign(&members, &counts(&[("t", 4)]))
            .unwrap();
        assert_eq!(
            render(&result),
            expect(&[("m-2", "t[0, 3]"), ("m-1", "t[1]"), ("m-0", "t[2]")])
        );
    }

    #[test]
    fn no_members_or_no_topics_assign_nothing() {
        assert!(RoundRobinAssignor
            .assign(&[], &counts(&[("t", 2)]))
            .unwrap()
            .is_empty());
        let members = [member("c0", None, &[]), member("c1", None, &["missing"])];
        let result = RoundRobinAssignor
            .assign(&members, &counts(&[("t", 2)]))
            .unwrap();
        assert_eq!(render(&result), expect(&[("c0", ""), ("c1", "")]));
    }

    proptest! {
        #[test]
        fn every_partition_once((members, counts) in group()) {
            let result = RoundRobinAssignor.assign(&members, &counts).unwrap();
            check_complete_and_exclusive(&members, &counts, &result)?;
            let mut reversed = members.clone();
            reversed.reverse();
            prop_assert_eq!(RoundRobinAssignor.assign(&reversed, &counts).unwrap(), result);
        }

        #[test]
        fn balanced_when_everyone_subscribes_the_same((mut members, counts) in group()) {
            let topics: Vec<String> = counts.keys().cloned().collect();
            for m in &mut members {
                m.subscription.topics = topics.clone();
            }
            let result = RoundRobinAssignor.assign(&members, &counts).unwrap();
            let sizes: Vec<usize> = result.values().map(|a| a.partitions().count()).collect();
            let min = sizes.iter().min().copied().unwrap_or(0);
            let max = sizes.iter().max().copied().unwrap_or(0);
            prop_assert!(max - min <= 1, "sizes {:?}", sizes);
        }
    }
}
