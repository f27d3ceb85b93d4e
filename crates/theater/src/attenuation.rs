//! A child never gets more than its parent.
//!
//! A supervisor's child is described by a manifest its parent (a guest, perhaps hostile) wrote.
//! [`attenuate`] holds that manifest within the parent's: its handlers are a subset of the
//! parent's, each handler's settings are within the parent's (the handler family decides how,
//! in `Handler::attenuate`), and every runtime-owned key obeys the rule [`RULES`] gives it. A
//! key the child sets beyond its parent's value is refused, naming the key; a limit it leaves
//! unset becomes the smaller of the default and the parent's value. The root manifest is the
//! operator's own file and is the ceiling.

use std::collections::BTreeSet;
use std::fmt::Display;

use theater_chain::Durability;

use crate::family::Refusal;
use crate::manifest::HandlerGrant;
use crate::manifest::{ComponentSource, Manifest};
use crate::supervision::RestartType;

/// How a child's value of a key is held within its parent's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// A number at most the parent's; unset: the smaller of the default and the parent's.
    AtMost,
    /// A number at least the parent's; unset: the larger of the default and the parent's.
    AtLeast,
    /// Not weaker than the parent's (durability, recording, restart eagerness); unset: the
    /// parent's where the default would be stronger than the parent allows.
    NoWeakerThanParent,
    /// A file read for the child once, beneath the parent's supervisor root.
    Confined,
    /// The handler set: a subset of the parent's, each handler's settings within the parent's.
    Handlers,
    /// Grants nothing (a label, or how the child treats its own children).
    Free,
}

/// One manifest key and its attenuation rule.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The key as `table.key`, or a top-level key.
    pub key: &'static str,
    pub kind: RuleKind,
    /// The rule in words, as `docs/manifest.md` gives it.
    pub rule: &'static str,
}

const fn rule(key: &'static str, kind: RuleKind, rule: &'static str) -> Rule {
    Rule { key, kind, rule }
}

/// Every key the manifest parser accepts outside `[[handler]]` tables, with its rule. (Handler
/// keys carry their rules in `Handler::keys`.) A test fails if the parser accepts a key that
/// has no rule here.
pub const RULES: &[Rule] = &[
    rule("name", RuleKind::Free, "a label"),
    rule("version", RuleKind::Free, "a label"),
    rule("description", RuleKind::Free, "a label"),
    rule(
        "component",
        RuleKind::Confined,
        "a file beneath the parent's supervisor root, opened once; `store:` references are refused",
    ),
    rule(
        "init_state",
        RuleKind::Confined,
        "a file beneath the parent's supervisor root, opened once",
    ),
    rule(
        "save_chain",
        RuleKind::NoWeakerThanParent,
        "false is refused under a recorded parent",
    ),
    rule(
        "handler",
        RuleKind::Handlers,
        "only types the parent has, each within the parent's settings",
    ),
    rule("limits.memory_mb", RuleKind::AtMost, "at most the parent's"),
    rule(
        "limits.max_call_cpu_ms",
        RuleKind::AtMost,
        "at most the parent's",
    ),
    rule(
        "chain.durability",
        RuleKind::NoWeakerThanParent,
        "at least as durable as the parent's (every-event > batched); unset: the parent's",
    ),
    rule(
        "chain.snapshot_every",
        RuleKind::AtLeast,
        "snapshots at most as often as the parent's (0, never, is the least often); unset: the less often of the default and the parent's",
    ),
    rule(
        "messaging.request_timeout_ms",
        RuleKind::AtMost,
        "at most the parent's",
    ),
    rule(
        "messaging.mailbox_capacity",
        RuleKind::AtMost,
        "at most the parent's",
    ),
    rule(
        "messaging.max_message_bytes",
        RuleKind::AtMost,
        "at most the parent's",
    ),
    rule(
        "messaging.mailbox_bytes",
        RuleKind::AtMost,
        "at most the parent's",
    ),
    rule(
        "supervision.strategy",
        RuleKind::Free,
        "how the child treats its own children",
    ),
    rule(
        "supervision.restart_from",
        RuleKind::Free,
        "how the child restarts its own children",
    ),
    rule(
        "supervision.restart",
        RuleKind::NoWeakerThanParent,
        "restarts its children no more eagerly than the parent's default (permanent > transient > temporary)",
    ),
    rule(
        "supervision.max_restarts",
        RuleKind::AtMost,
        "at most the parent's",
    ),
    rule(
        "supervision.period_ms",
        RuleKind::AtLeast,
        "at least the parent's (so no more restarts per second)",
    ),
    rule(
        "supervision.shutdown_timeout_ms",
        RuleKind::AtMost,
        "at most the parent's",
    ),
    rule(
        "supervision.max_children",
        RuleKind::AtMost,
        "at most the parent's",
    ),
    rule(
        "child.restart",
        RuleKind::NoWeakerThanParent,
        "restarted no more eagerly than the parent's `supervision.restart` allows",
    ),
];

/// `child` held within `parent`: narrowed where it left limits unset, or refused naming the
/// first key it asked too much of. `runtime_durability` is the durability of chains whose
/// manifest sets none.
pub fn attenuate(
    parent: &Manifest,
    mut child: Manifest,
    runtime_durability: Durability,
) -> Result<Manifest, Refusal> {
    child.handlers = attenuate_handlers(parent, &child.handlers)?;
    attenuate_keys(parent, child, runtime_durability)
}

/// [`attenuate`] without the handlers: only the runtime-owned keys. It touches nothing outside
/// the two manifests, so a replay can apply it to recorded manifests.
pub fn attenuate_keys(
    parent: &Manifest,
    mut child: Manifest,
    runtime_durability: Durability,
) -> Result<Manifest, Refusal> {
    let explicit = std::mem::take(&mut child.explicit);
    let keys = Keys {
        explicit: &explicit,
    };

    if let ComponentSource::Store(_) = child.component {
        return Err(refuse(
            "component",
            "a child's component must be a file beneath its parent's supervisor root; `store:` references are for the operator's root actor",
        ));
    }
    if parent.save_chain && !child.save_chain {
        return Err(refuse(
            "save_chain",
            "false is refused under a parent whose chain is recorded: a child is recorded at least as durably as its parent",
        ));
    }
    let (p, c) = (&parent.limits, &mut child.limits);
    keys.at_most("limits.memory_mb", &mut c.memory_mb, p.memory_mb)?;
    keys.at_most(
        "limits.max_call_cpu_ms",
        &mut c.max_call_cpu_ms,
        p.max_call_cpu_ms,
    )?;

    let parent_durability = parent.chain.durability.unwrap_or(runtime_durability);
    match child.chain.durability {
        Some(d) if durability_rank(d) < durability_rank(parent_durability) => {
            return Err(refuse(
                "chain.durability",
                format!(
                    "{} is less durable than the parent's {}",
                    durability_name(d),
                    durability_name(parent_durability)
                ),
            ));
        }
        Some(_) => {}
        None => child.chain.durability = parent.chain.durability,
    }
    // 0 means never: the least often of all.
    let interval = |n: u64| if n == 0 { u64::MAX } else { n };
    let (parent_every, child_every) = (
        interval(parent.chain.snapshot_every),
        interval(child.chain.snapshot_every),
    );
    if keys.set("chain.snapshot_every") {
        if child_every < parent_every {
            return Err(refuse(
                "chain.snapshot_every",
                format!(
                    "{} snapshots more often than the parent's {}",
                    child.chain.snapshot_every, parent.chain.snapshot_every
                ),
            ));
        }
    } else if child_every < parent_every {
        child.chain.snapshot_every = parent.chain.snapshot_every;
    }

    let (p, c) = (&parent.messaging, &mut child.messaging);
    keys.at_most(
        "messaging.request_timeout_ms",
        &mut c.request_timeout_ms,
        p.request_timeout_ms,
    )?;
    keys.at_most(
        "messaging.mailbox_capacity",
        &mut c.mailbox_capacity,
        p.mailbox_capacity,
    )?;
    keys.at_most(
        "messaging.max_message_bytes",
        &mut c.max_message_bytes,
        p.max_message_bytes,
    )?;
    keys.at_most(
        "messaging.mailbox_bytes",
        &mut c.mailbox_bytes,
        p.mailbox_bytes,
    )?;

    let (p, c) = (&parent.supervision, &mut child.supervision);
    keys.at_most(
        "supervision.max_restarts",
        &mut c.max_restarts,
        p.max_restarts,
    )?;
    keys.at_least("supervision.period_ms", &mut c.period_ms, p.period_ms)?;
    keys.at_most(
        "supervision.shutdown_timeout_ms",
        &mut c.shutdown_timeout_ms,
        p.shutdown_timeout_ms,
    )?;
    keys.at_most(
        "supervision.max_children",
        &mut c.max_children,
        p.max_children,
    )?;
    if eagerness(c.restart) > eagerness(p.restart) {
        if keys.set("supervision.restart") {
            return Err(refuse(
                "supervision.restart",
                format!(
                    "{} restarts more eagerly than the parent's {}",
                    c.restart.name(),
                    p.restart.name()
                ),
            ));
        }
        c.restart = p.restart;
    }
    if let Some(restart) = child.restart
        && eagerness(restart) > eagerness(parent.supervision.restart)
    {
        return Err(refuse(
            "child.restart",
            format!(
                "{} is more eager than the parent's supervision.restart {}",
                restart.name(),
                parent.supervision.restart.name()
            ),
        ));
    }

    child.explicit = explicit;
    Ok(child)
}

/// Only handlers the parent has, each within the parent's settings.
fn attenuate_handlers(
    parent: &Manifest,
    child: &[HandlerGrant],
) -> Result<Vec<HandlerGrant>, Refusal> {
    child
        .iter()
        .map(|grant| {
            let name = grant.name();
            let Some(theirs) = parent.handlers.iter().find(|g| g.name() == name) else {
                return Err(Refusal::handler(
                    name,
                    "type",
                    "the parent does not have this handler, and a child gets only handlers its parent has",
                ));
            };
            Ok(HandlerGrant {
                family: grant.family.clone(),
                settings: grant.family.attenuate(&theirs.settings, &grant.settings)?,
            })
        })
        .collect()
}

fn refuse(key: &str, message: impl Into<String>) -> Refusal {
    let (table, _) = key.split_once('.').unwrap_or(("", key));
    Refusal {
        what: if table.is_empty() {
            "manifest".into()
        } else {
            format!("[{table}]")
        },
        key: key.to_owned(),
        message: message.into(),
    }
}

struct Keys<'a> {
    explicit: &'a BTreeSet<&'static str>,
}

impl Keys<'_> {
    fn set(&self, key: &str) -> bool {
        self.explicit.contains(key)
    }

    fn at_most<T: Ord + Copy + Display>(
        &self,
        key: &str,
        child: &mut T,
        parent: T,
    ) -> Result<(), Refusal> {
        if *child <= parent {
            return Ok(());
        }
        if self.set(key) {
            return Err(refuse(
                key,
                format!("{child} is more than the parent's {parent}"),
            ));
        }
        *child = parent;
        Ok(())
    }

    fn at_least<T: Ord + Copy + Display>(
        &self,
        key: &str,
        child: &mut T,
        parent: T,
    ) -> Result<(), Refusal> {
        if *child >= parent {
            return Ok(());
        }
        if self.set(key) {
            return Err(refuse(
                key,
                format!("{child} is less than the parent's {parent}"),
            ));
        }
        *child = parent;
        Ok(())
    }
}

fn durability_rank(d: Durability) -> u8 {
    match d {
        Durability::Batched => 0,
        Durability::EveryEvent => 1,
    }
}

fn durability_name(d: Durability) -> &'static str {
    match d {
        Durability::Batched => "batched",
        Durability::EveryEvent => "every-event",
    }
}

fn eagerness(r: RestartType) -> u8 {
    match r {
        RestartType::Temporary => 0,
        RestartType::Transient => 1,
        RestartType::Permanent => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{ManifestOrigin, accepted_keys};

    const BASE: &str = "name = \"a\"\nversion = \"0.1.0\"\ncomponent = \"a.wasm\"\n";

    fn manifest(dir: &std::path::Path, extra: &str) -> Manifest {
        Manifest::parse(
            &format!("{BASE}{extra}"),
            ManifestOrigin::File(dir.join("manifest.toml")),
        )
        .unwrap()
    }

    fn child(parent: &Manifest, extra: &str) -> Result<Manifest, Refusal> {
        let dir = parent.origin.base_dir().to_owned();
        attenuate(parent, manifest(&dir, extra), Durability::Batched)
    }

    /// `key` as the TOML lines that set it to `value`.
    fn set(key: &str, value: &str) -> String {
        match key.split_once('.') {
            Some((table, field)) => format!("[{table}]\n{field} = {value}\n"),
            None => format!("{key} = {value}\n"),
        }
    }

    // Every handler family's keys, the actor model's included, are checked with the families
    // this project ships in theater-handlers (tests/attenuation.rs).
    #[test]
    fn every_key_the_parser_accepts_has_a_rule_and_no_rule_is_stale() {
        let accepted = accepted_keys();
        for key in &accepted {
            assert!(
                RULES.iter().any(|r| r.key == key),
                "manifest key `{key}` has no attenuation rule in RULES"
            );
        }
        for rule in RULES {
            assert!(
                accepted.iter().any(|k| k == rule.key),
                "RULES names `{}`, which the parser does not accept",
                rule.key
            );
        }
    }

    #[test]
    fn every_rule_is_documented_in_the_manifest_reference() {
        let doc = include_str!("../../../docs/manifest.md");
        let section = &doc[doc.find("## Attenuation").expect("an Attenuation section")..];
        for rule in RULES {
            assert!(
                section.contains(&format!("`{}`", rule.key)),
                "docs/manifest.md, Attenuation, does not give the rule of `{}`",
                rule.key
            );
        }
    }

    #[test]
    fn each_limit_raised_by_a_child_is_refused_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let limits = RULES
            .iter()
            .filter(|r| matches!(r.kind, RuleKind::AtMost | RuleKind::AtLeast));
        let mut checked = 0;
        for rule in limits {
            let parent = manifest(dir.path(), &set(rule.key, "100"));
            let beyond = if rule.kind == RuleKind::AtMost {
                "101"
            } else {
                "99"
            };
            let refusal = child(&parent, &set(rule.key, beyond)).unwrap_err();
            assert_eq!(refusal.key, rule.key, "{refusal}");
            assert!(refusal.to_string().contains(beyond), "{refusal}");
            assert!(
                child(&parent, &set(rule.key, "100")).is_ok(),
                "{}",
                rule.key
            );
            // Unset: the default held within the parent's value.
            let unset = child(&parent, "").unwrap();
            let shown = format!("{unset:?}");
            assert!(shown.contains(": 100"), "{}: {shown}", rule.key);
            checked += 1;
        }
        assert!(checked >= 10, "{checked}");
    }

    #[test]
    fn unset_limits_become_the_smaller_of_default_and_parent() {
        let dir = tempfile::tempdir().unwrap();
        let parent = manifest(dir.path(), "[limits]\nmemory_mb = 8\n");
        let c = child(&parent, "").unwrap();
        assert_eq!(c.limits.memory_mb, 8);
        let big = manifest(dir.path(), "[limits]\nmemory_mb = 512\n");
        let c = child(&big, "").unwrap();
        assert_eq!(c.limits.memory_mb, crate::manifest::DEFAULT_MEMORY_MB);
    }

    #[test]
    fn a_child_is_recorded_at_least_as_durably_as_its_parent() {
        let dir = tempfile::tempdir().unwrap();
        let recorded = manifest(dir.path(), "");
        let refusal = child(&recorded, "save_chain = false\n").unwrap_err();
        assert_eq!(refusal.key, "save_chain");
        let unrecorded = manifest(dir.path(), "save_chain = false\n");
        assert!(child(&unrecorded, "save_chain = false\n").is_ok());

        let durable = manifest(dir.path(), "[chain]\ndurability = \"every-event\"\n");
        let refusal = child(&durable, "[chain]\ndurability = \"batched\"\n").unwrap_err();
        assert_eq!(refusal.key, "chain.durability");
        let c = child(&durable, "").unwrap();
        assert_eq!(c.chain.durability, Some(Durability::EveryEvent));
    }

    #[test]
    fn a_child_may_not_name_a_store_component() {
        let dir = tempfile::tempdir().unwrap();
        let parent = manifest(dir.path(), "");
        let text = format!(
            "name = \"c\"\nversion = \"1\"\ncomponent = \"store:{}\"\n",
            "ab".repeat(32)
        );
        let child = Manifest::parse(&text, parent.origin.clone()).unwrap();
        let refusal = attenuate(&parent, child, Durability::Batched).unwrap_err();
        assert_eq!(refusal.key, "component");
    }

    #[test]
    fn a_child_gets_only_handlers_its_parent_has() {
        let dir = tempfile::tempdir().unwrap();
        let parent = manifest(dir.path(), "[[handler]]\ntype = \"message-server\"\n");
        let refusal = child(&parent, "[[handler]]\ntype = \"supervisor\"\n").unwrap_err();
        assert_eq!(refusal.key, "type");
        assert!(
            refusal.to_string().contains("handler \"supervisor\""),
            "{refusal}"
        );
        let c = child(&parent, "[[handler]]\ntype = \"message-server\"\n").unwrap();
        assert!(c.grants_handler("message-server"));
        assert!(c.grants_handler("runtime"));
    }

    #[test]
    fn restart_eagerness_is_held_within_the_parents() {
        let dir = tempfile::tempdir().unwrap();
        let parent = manifest(dir.path(), "[supervision]\nrestart = \"transient\"\n");
        let refusal = child(&parent, "[child]\nrestart = \"permanent\"\n").unwrap_err();
        assert_eq!(refusal.key, "child.restart");
        let refusal = child(&parent, "[supervision]\nrestart = \"permanent\"\n").unwrap_err();
        assert_eq!(refusal.key, "supervision.restart");
        let c = child(&parent, "").unwrap();
        assert_eq!(c.supervision.restart, RestartType::Transient);
        assert!(child(&parent, "[child]\nrestart = \"temporary\"\n").is_ok());
    }

    #[test]
    fn a_childs_supervisor_root_must_be_beneath_its_parents() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let sup = "[[handler]]\ntype = \"supervisor\"\n";
        let parent = manifest(dir.path(), &format!("{sup}root = \"sub\"\n"));
        for outside in ["/", "..", "sub/../..", "."] {
            let refusal = child(&parent, &format!("{sup}root = {outside:?}\n")).unwrap_err();
            assert_eq!(refusal.key, "root", "{outside}: {refusal}");
        }
        let c = child(&parent, sup).unwrap();
        let root = c.settings::<crate::handlers::SupervisorSettings>().unwrap();
        assert!(root.root().unwrap().path().ends_with("sub"));
        assert!(child(&parent, &format!("{sup}root = \"sub\"\n")).is_ok());
    }
}
