//! Partition assignors run by the group leader at SyncGroup time.
//!
//! The names and results match Java's `RangeAssignor` (`range`) and
//! `RoundRobinAssignor` (`roundrobin`), so a kafee leader hands out the same
//! assignment a Java or librdkafka leader would, and mixed groups agree on the
//! protocol name.
//!
//! Member order is Java's `MemberInfo` order: members with a
//! `group.instance.id` (static members) first, ordered by instance id, then
//! dynamic members ordered by member id. Strings compare as Java's
//! `String.compareTo` does (UTF-16 code units), which differs from Rust's
//! byte order for characters above U+FFFF.
//!
//! Java's range assignor also has a rack-aware mode (KIP-881) that is used
//! only when members send `client.rack` *and* partition replica racks are
//! known. These assignors are given partition counts only, so they always
//! compute the rack-unaware assignment; with no racks configured the result
//! is identical to Java's.

mod range;
mod roundrobin;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use kafee_protocol::consumer_protocol::{Assignment, Subscription, TopicPartitions};

pub use range::RangeAssignor;
pub use roundrobin::RoundRobinAssignor;

/// A group member id as the coordinator assigned it.
pub type MemberId = String;

/// One member's entry from the JoinGroup response, with its decoded subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSubscription {
    /// The member id.
    pub member_id: MemberId,
    /// The member's `group.instance.id`, for static members.
    pub group_instance_id: Option<String>,
    /// The decoded `consumer` protocol subscription.
    pub subscription: Subscription,
}

/// Why an assignment could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AssignError {
    /// Two members share one member id.
    #[error("member id {member_id:?} appears more than once in the group")]
    DuplicateMember {
        /// The repeated id.
        member_id: MemberId,
    },
    /// Metadata reported a negative partition count.
    #[error("topic {topic:?} has a negative partition count {count}")]
    NegativePartitionCount {
        /// The topic.
        topic: String,
        /// The count reported.
        count: i32,
    },
}

/// A partition assignment strategy of the `consumer` protocol type.
pub trait Assignor: std::fmt::Debug + Send + Sync {
    /// The protocol name announced in JoinGroup (`"range"`, `"roundrobin"`).
    fn name(&self) -> &'static str;

    /// Assigns the partitions of the subscribed topics to `members`.
    ///
    /// `partitions_per_topic` holds the partition count of every subscribed
    /// topic that metadata knows; subscribed topics missing from it (or with
    /// zero partitions) are skipped, as Java does. Every member gets an entry,
    /// possibly empty. Topics appear in each assignment sorted, partitions
    /// ascending.
    fn assign(
        &self,
        members: &[MemberSubscription],
        partitions_per_topic: &BTreeMap<String, i32>,
    ) -> Result<BTreeMap<MemberId, Assignment>, AssignError>;
}

/// The assignor called `name` among the built-in ones.
pub fn builtin(name: &str) -> Option<Box<dyn Assignor>> {
    match name {
        "range" => Some(Box::new(RangeAssignor)),
        "roundrobin" => Some(Box::new(RoundRobinAssignor)),
        _ => None,
    }
}

/// Compares strings as Java's `String.compareTo` does (UTF-16 code units).
pub(crate) fn java_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Java's `MemberInfo` order: static members first by instance id, then
/// dynamic members by member id (member id breaks remaining ties).
pub(crate) fn member_order(a: &MemberSubscription, b: &MemberSubscription) -> Ordering {
    let by_instance = match (&a.group_instance_id, &b.group_instance_id) {
        (Some(x), Some(y)) => java_cmp(x, y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    by_instance.then_with(|| java_cmp(&a.member_id, &b.member_id))
}

/// Checks the inputs shared by every assignor and returns the members in
/// Java's order.
pub(crate) fn sorted_members<'a>(
    members: &'a [MemberSubscription],
    partitions_per_topic: &BTreeMap<String, i32>,
) -> Result<Vec<&'a MemberSubscription>, AssignError> {
    if let Some((topic, count)) = partitions_per_topic.iter().find(|(_, c)| **c < 0) {
        return Err(AssignError::NegativePartitionCount {
            topic: topic.clone(),
            count: *count,
        });
    }
    let mut seen = BTreeSet::new();
    for m in members {
        if !seen.insert(m.member_id.as_str()) {
            return Err(AssignError::DuplicateMember {
                member_id: m.member_id.clone(),
            });
        }
    }
    let mut sorted: Vec<&MemberSubscription> = members.iter().collect();
    sorted.sort_by(|a, b| member_order(a, b));
    Ok(sorted)
}

/// Groups (topic, partition) pairs into the consumer-protocol shape: topics
/// sorted, partitions ascending.
pub(crate) fn to_assignment(pairs: BTreeMap<String, Vec<i32>>) -> Assignment {
    Assignment {
        assigned_partitions: pairs
            .into_iter()
            .map(|(topic, mut partitions)| {
                partitions.sort_unstable();
                TopicPartitions { topic, partitions }
            })
            .collect(),
        user_data: None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn member(id: &str, instance: Option<&str>, topics: &[&str]) -> MemberSubscription {
        MemberSubscription {
            member_id: id.to_string(),
            group_instance_id: instance.map(str::to_string),
            subscription: Subscription::new(topics.iter().map(|t| t.to_string()).collect()),
        }
    }

    pub(crate) fn counts(pairs: &[(&str, i32)]) -> BTreeMap<String, i32> {
        pairs.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    /// Renders an assignment as `topic:partitions` strings for compact asserts.
    pub(crate) fn render(result: &BTreeMap<MemberId, Assignment>) -> BTreeMap<String, String> {
        result
            .iter()
            .map(|(m, a)| {
                let s = a
                    .assigned_partitions
                    .iter()
                    .map(|tp| format!("{}{:?}", tp.topic, tp.partitions))
                    .collect::<Vec<_>>()
                    .join(" ");
                (m.clone(), s)
            })
            .collect()
    }

    pub(crate) fn expect(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(m, s)| (m.to_string(), s.to_string()))
            .collect()
    }

    #[test]
    fn java_string_order_is_utf16_order() {
        // U+FF61 sorts before U+10000 in UTF-8 but after it in UTF-16.
        assert!("\u{FF61}" < "\u{10000}");
        assert_eq!(java_cmp("\u{FF61}", "\u{10000}"), Ordering::Greater);
        assert_eq!(java_cmp("a", "b"), Ordering::Less);
    }

    #[test]
    fn static_members_sort_first_by_instance_id() {
        let members = [
            member("a", None, &[]),
            member("z", Some("i1"), &[]),
            member("y", Some("i2"), &[]),
            member("b", Some("i0"), &[]),
        ];
        let sorted = sorted_members(&members, &BTreeMap::new()).unwrap();
        let ids: Vec<&str> = sorted.iter().map(|m| m.member_id.as_str()).collect();
        assert_eq!(ids, ["b", "z", "y", "a"]);
    }

    #[test]
    fn builtin_names_match_java() {
        assert_eq!(builtin("range").unwrap().name(), "range");
        assert_eq!(builtin("roundrobin").unwrap().name(), "roundrobin");
        assert!(builtin("cooperative-sticky").is_none());
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        for a in [builtin("range").unwrap(), builtin("roundrobin").unwrap()] {
            let dup = [member("m", None, &["t"]), member("m", None, &["t"])];
            assert_eq!(
                a.assign(&dup, &counts(&[("t", 1)]))
                    .unwrap_err()
                    .to_string(),
                "member id \"m\" appears more than once in the group"
            );
            let one = [member("m", None, &["t"])];
            assert_eq!(
                a.assign(&one, &counts(&[("t", -1)])).unwrap_err(),
                AssignError::NegativePartitionCount {
                    topic: "t".into(),
                    count: -1
                }
            );
        }
    }

    prop_compose! {
        /// Up to 6 members over up to 4 topics, some static.
        pub(crate) fn group()(
            n in 1usize..7,
            subs in prop::collection::vec(prop::collection::btree_set(0usize..4, 0..4), 7),
            statics in prop::collection::vec(prop::option::of(0u8..10), 7),
            topic_counts in prop::collection::vec(0i32..9, 4),
            known in prop::collection::vec(any::<bool>(), 4),
        ) -> (Vec<MemberSubscription>, BTreeMap<String, i32>) {
            let mut seen_instances = BTreeSet::new();
            let members = (0..n).map(|i| {
                let instance = statics[i]
                    .filter(|s| seen_instances.insert(*s))
                    .map(|s| format!("instance-{s}"));
                MemberSubscription {
                    member_id: format!("member-{}", (i * 7) % 11),
                    group_instance_id: instance,
                    subscription: Subscription::new(
                        subs[i].iter().map(|t| format!("topic-{t}")).collect(),
                    ),
                }
            }).collect();
            let counts = (0..4)
                .filter(|t| known[*t])
                .map(|t| (format!("topic-{t}"), topic_counts[t]))
                .collect();
            (members, counts)
        }
    }

    /// Every partition of every subscribed, known topic goes to exactly one
    /// member that subscribes to it; nothing else is assigned; every member
    /// has an entry.
    pub(crate) fn check_complete_and_exclusive(
        members: &[MemberSubscription],
        counts: &BTreeMap<String, i32>,
        result: &BTreeMap<MemberId, Assignment>,
    ) -> Result<(), TestCaseError> {
        prop_assert_eq!(result.len(), members.len());
        let mut owner: BTreeMap<(String, i32), &str> = BTreeMap::new();
        for m in members {
            let a = &result[&m.member_id];
            for (topic, p) in a.partitions() {
                prop_assert!(m.subscription.topics.iter().any(|t| t == topic));
                prop_assert!(owner.insert((topic.to_string(), p), &m.member_id).is_none());
            }
        }
        for (topic, n) in counts {
            let subscribed = members
                .iter()
                .any(|m| m.subscription.topics.contains(topic));
            for p in 0..*n {
                prop_assert_eq!(owner.contains_key(&(topic.clone(), p)), subscribed);
            }
        }
        prop_assert!(owner
            .keys()
            .all(|(t, p)| counts.get(t).is_some_and(|n| p < n)));
        Ok(())
    }
}
