//! Property tests: random sequences of puts, placeholders, label moves and removals, clock
//! advances and rotations, checked step by step against a small reference model of AWS's
//! label rules, with the invariants checked independently of both.

use std::collections::{BTreeMap, BTreeSet};

use keyroll_core::model::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, MAX_VERSIONS, SecretRecord};
use keyroll_core::time::Timestamp;
use proptest::prelude::*;

const T0: Timestamp = Timestamp(1_700_000_000_000);
const LABELS: [&str; 5] = [AWSCURRENT, AWSPENDING, AWSPREVIOUS, "BLUE", "GREEN"];

#[derive(Debug, Clone)]
enum Op {
    /// PutSecretValue with token #t; `same` says whether the value equals the stored one.
    Put {
        t: usize,
        stages: Option<Vec<usize>>,
        same: bool,
    },
    /// RotateSecret's value-less AWSPENDING placeholder.
    Placeholder {
        t: usize,
    },
    /// UpdateSecretVersionStage with MoveToVersionId (and a RemoveFromVersionId choice).
    Move {
        label: usize,
        to: usize,
        remove_from: Option<usize>,
    },
    /// UpdateSecretVersionStage with only RemoveFromVersionId.
    Remove {
        label: usize,
        from: usize,
    },
    /// The service's clean-up after a rotation: AWSPENDING removed from its holder.
    FinishRotation,
    Advance {
        hours: i64,
    },
}

fn token(t: usize) -> String {
    format!("{t:0>36}")
}

fn op(tokens: usize) -> impl Strategy<Value = Op> {
    let label = 0..LABELS.len();
    prop_oneof![
        4 => (0..tokens, prop::option::weighted(0.6, prop::collection::vec(0..LABELS.len(), 0..3)), any::<bool>())
            .prop_map(|(t, stages, same)| Op::Put { t, stages, same }),
        1 => (0..tokens).prop_map(|t| Op::Placeholder { t }),
        3 => (label.clone(), 0..tokens, prop::option::of(0..tokens))
            .prop_map(|(label, to, remove_from)| Op::Move { label, to, remove_from }),
        1 => (label, 0..tokens).prop_map(|(label, from)| Op::Remove { label, from }),
        1 => Just(Op::FinishRotation),
        1 => (1i64..48).prop_map(|hours| Op::Advance { hours }),
    ]
}

/// The reference: versions in creation order, each with its labels.
#[derive(Debug, Clone, Default, PartialEq)]
struct Model {
    versions: Vec<MVersion>,
}

#[derive(Debug, Clone, PartialEq)]
struct MVersion {
    id: String,
    created: i64,
    labels: BTreeSet<String>,
    has_value: bool,
}

impl Model {
    fn idx(&self, id: &str) -> Option<usize> {
        self.versions.iter().position(|v| v.id == id)
    }
    fn holder(&self, l: &str) -> Option<usize> {
        self.versions.iter().position(|v| v.labels.contains(l))
    }
    /// Puts label `l` on version `i`, taking it from its holder; AWSCURRENT drags AWSPREVIOUS
    /// to the version it left.
    fn give(&mut self, l: &str, i: usize) {
        let old = self.holder(l);
        if old == Some(i) {
            return;
        }
        if let Some(o) = old {
            self.versions[o].labels.remove(l);
        }
        self.versions[i].labels.insert(l.to_string());
        if l == AWSCURRENT
            && let Some(o) = old
        {
            self.give(AWSPREVIOUS, o);
        }
    }
    fn gc(&mut self, _now: i64) {
        // Unlabelled versions beyond MAX_VERSIONS go oldest first, whatever their age.
        while self.versions.len() > MAX_VERSIONS {
            let victim = self
                .versions
                .iter()
                .enumerate()
                .filter(|(_, v)| v.labels.is_empty())
                .min_by_key(|(_, v)| v.created)
                .map(|(i, _)| i);
            match victim {
                Some(i) => {
                    self.versions.remove(i);
                }
                None => break,
            }
        }
    }

    fn apply(&mut self, op: &Op, now: i64) -> Result<(), ()> {
        match op {
            Op::Put { t, stages, same } => {
                let id = token(*t);
                if let Some(i) = self.idx(&id)
                    && self.versions[i].has_value
                {
                    return if *same { Ok(()) } else { Err(()) };
                }
                let mut labels: Vec<String> = match stages {
                    Some(s) if !s.is_empty() => s.iter().map(|&l| LABELS[l].to_string()).collect(),
                    _ => vec![AWSCURRENT.to_string()],
                };
                let mut seen = BTreeSet::new();
                labels.retain(|l| seen.insert(l.clone()));
                if self.holder(AWSCURRENT).is_none() && !labels.iter().any(|l| l == AWSCURRENT) {
                    labels.insert(0, AWSCURRENT.into());
                }
                let i = match self.idx(&id) {
                    Some(i) => {
                        self.versions[i].has_value = true;
                        i
                    }
                    None => {
                        self.versions.push(MVersion {
                            id,
                            created: now,
                            labels: BTreeSet::new(),
                            has_value: true,
                        });
                        self.versions.len() - 1
                    }
                };
                // AWSCURRENT last: the version it leaves becomes AWSPREVIOUS, whatever else
                // the request named.
                labels.sort_by_key(|l| l == AWSCURRENT);
                // A value put as AWSCURRENT (and not AWSPENDING) ends a rotation: the version
                // it replaces loses AWSPENDING (recorded AWS responses,
                // update_secret_version_stages_current_pending).
                if labels.iter().any(|l| l == AWSCURRENT)
                    && !labels.iter().any(|l| l == AWSPENDING)
                    && let Some(old) = self.holder(AWSCURRENT)
                    && old != i
                {
                    self.versions[old].labels.remove(AWSPENDING);
                }
                for l in &labels {
                    self.give(l, i);
                }
                self.gc(now);
                Ok(())
            }
            Op::Placeholder { t } => {
                let id = token(*t);
                if self.holder(AWSCURRENT).is_none() {
                    return Err(());
                }
                if let Some(i) = self.idx(&id) {
                    let v = &self.versions[i];
                    return if v.labels.contains(AWSPENDING) && !v.has_value {
                        Ok(())
                    } else {
                        Err(())
                    };
                }
                self.versions.push(MVersion {
                    id,
                    created: now,
                    labels: BTreeSet::new(),
                    has_value: false,
                });
                let i = self.versions.len() - 1;
                self.give(AWSPENDING, i);
                self.gc(now);
                Ok(())
            }
            Op::Move {
                label,
                to,
                remove_from,
            } => {
                let l = LABELS[*label];
                let to = self.idx(&token(*to)).ok_or(())?;
                let rf = match remove_from {
                    Some(r) => {
                        let r = self.idx(&token(*r)).ok_or(())?;
                        if !self.versions[r].labels.contains(l) {
                            return Err(());
                        }
                        Some(r)
                    }
                    None => None,
                };
                if l == AWSCURRENT && !self.versions[to].has_value {
                    return Err(());
                }
                if let Some(h) = self.holder(l)
                    && h != to
                    && rf != Some(h)
                {
                    return Err(());
                }
                self.give(l, to);
                self.gc(now);
                Ok(())
            }
            Op::Remove { label, from } => {
                let l = LABELS[*label];
                let from = self.idx(&token(*from)).ok_or(())?;
                if !self.versions[from].labels.contains(l) || l == AWSCURRENT {
                    return Err(());
                }
                self.versions[from].labels.remove(l);
                self.gc(now);
                Ok(())
            }
            Op::FinishRotation => {
                if let Some(h) = self.holder(AWSPENDING) {
                    self.versions[h].labels.remove(AWSPENDING);
                    self.gc(now);
                }
                Ok(())
            }
            Op::Advance { .. } => Ok(()),
        }
    }
}

fn apply_real(
    rec: &mut SecretRecord,
    op: &Op,
    now: Timestamp,
    model_before: &Model,
) -> Result<(), ()> {
    match op {
        Op::Put { t, stages, same } => {
            let stages: Option<Vec<String>> = stages
                .as_ref()
                .map(|s| s.iter().map(|&l| LABELS[l].to_string()).collect());
            let existing_has_value = model_before
                .idx(&token(*t))
                .is_some_and(|i| model_before.versions[i].has_value);
            rec.put_version(&token(*t), stages.as_deref(), now, |_| {
                assert!(
                    existing_has_value,
                    "value comparison asked for a version without one"
                );
                *same
            })
            .map(|_| ())
            .map_err(|_| ())
        }
        Op::Placeholder { t } => rec
            .add_pending_placeholder(&token(*t), now)
            .map(|_| ())
            .map_err(|_| ()),
        Op::Move {
            label,
            to,
            remove_from,
        } => rec
            .update_stage(
                LABELS[*label],
                Some(&token(*to)),
                remove_from.map(token).as_deref(),
                now,
            )
            .map(|_| ())
            .map_err(|_| ()),
        Op::Remove { label, from } => rec
            .update_stage(LABELS[*label], None, Some(&token(*from)), now)
            .map(|_| ())
            .map_err(|_| ()),
        Op::FinishRotation => {
            if let Some(h) = rec.holder(AWSPENDING).map(|v| v.id.clone()) {
                rec.update_stage(AWSPENDING, None, Some(&h), now)
                    .map_err(|_| ())?;
            }
            Ok(())
        }
        Op::Advance { .. } => Ok(()),
    }
}

fn labels_of(rec: &SecretRecord) -> Vec<(String, BTreeSet<String>, bool)> {
    rec.versions
        .iter()
        .map(|v| {
            (
                v.id.clone(),
                v.stages.iter().cloned().collect(),
                v.has_value,
            )
        })
        .collect()
}

fn labels_of_model(m: &Model) -> Vec<(String, BTreeSet<String>, bool)> {
    m.versions
        .iter()
        .map(|v| (v.id.clone(), v.labels.clone(), v.has_value))
        .collect()
}

/// Invariants that hold whatever the operations were.
fn check_invariants(rec: &SecretRecord, now: Timestamp, ever_had_value: bool, wrote: bool) {
    let mut holders: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &rec.versions {
        let unique: BTreeSet<&String> = v.stages.iter().collect();
        assert_eq!(unique.len(), v.stages.len(), "duplicate label on {}", v.id);
        for s in &v.stages {
            *holders.entry(s.as_str()).or_default() += 1;
        }
    }
    for (l, n) in &holders {
        assert_eq!(*n, 1, "label {l} on {n} versions");
    }
    if ever_had_value {
        let cur = rec
            .current()
            .expect("AWSCURRENT must exist once a value was stored");
        assert!(cur.has_value, "AWSCURRENT on a version without a value");
    }
    let visible = rec.version_ids_to_stages();
    for v in &rec.versions {
        assert_eq!(
            visible.contains_key(&v.id),
            !v.is_deprecated(),
            "deprecated versions are hidden"
        );
    }
    // Collection runs on writes, so the limit is checked right after a successful write.
    if wrote && rec.versions.len() > MAX_VERSIONS {
        for v in rec.versions.iter().filter(|v| v.is_deprecated()) {
            assert!(
                now.millis() - v.created.millis() < 24 * 3_600_000,
                "an old deprecated version survived while over the limit"
            );
        }
    }
}

fn run(ops: &[Op]) {
    let mut rec = SecretRecord::new(
        "arn:aws:secretsmanager:us-east-1:0:secret:p-AbCdEf".into(),
        "p".into(),
        T0,
    );
    let mut model = Model::default();
    let mut now = T0;
    let mut ever_had_value = false;
    for (i, op) in ops.iter().enumerate() {
        if let Op::Advance { hours } = op {
            now = now.plus_millis(hours * 3_600_000);
        }
        let before_current = rec.current().map(|v| v.id.clone());
        let before = model.clone();
        let expected = model.apply(op, now.millis());
        let got = apply_real(&mut rec, op, now, &before);
        assert_eq!(
            got, expected,
            "op #{i} {op:?} outcome differs from the model"
        );
        if got.is_err() {
            assert_eq!(
                labels_of_model(&before),
                labels_of(&rec),
                "a failed op #{i} {op:?} changed state"
            );
        }
        assert_eq!(
            labels_of(&rec),
            labels_of_model(&model),
            "op #{i} {op:?}: state differs from the model"
        );
        // AWSPREVIOUS follows AWSCURRENT: when AWSCURRENT moved, the old holder is AWSPREVIOUS.
        let after_current = rec.current().map(|v| v.id.clone());
        if let (Some(b), Some(a)) = (&before_current, &after_current)
            && a != b
            && rec.version(b).is_some()
        {
            assert!(
                rec.version(b).unwrap().has_stage(AWSPREVIOUS),
                "op #{i}: AWSPREVIOUS not moved"
            );
        }
        ever_had_value |= rec.versions.iter().any(|v| v.has_value);
        let wrote = got.is_ok() && !matches!(op, Op::Advance { .. });
        check_invariants(&rec, now, ever_had_value, wrote);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, max_shrink_iters: 2_000, ..ProptestConfig::default() })]

    /// Short sequences over a small pool of tokens: lots of token reuse and label conflicts.
    #[test]
    fn labels_follow_the_model(ops in prop::collection::vec(op(8), 1..40)) {
        run(&ops);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Long sequences over many tokens: exercises the 100-version limit and the 24-hour rule.
    #[test]
    fn deprecation_follows_the_model(ops in prop::collection::vec(op(400), 100..260)) {
        run(&ops);
    }
}
