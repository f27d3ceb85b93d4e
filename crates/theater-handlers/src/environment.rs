//! `theater:simple/environment`: the host's environment variables, only those the manifest
//! allows (`allow = ["NAME", "PREFIX_*"]` in the `environment` handler table; nothing by
//! default). Every result is recorded.

use theater::plugin::wasmtime;
use theater::plugin::wasmtime::StoreContextMut;

use theater::plugin::ActorCtx;
use theater::plugin::{
    Handler, HostFuture, HostLinker, RecordAs, Refusal, SettingKey, SettingsInput,
};

/// The `environment` handler's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvironmentSettings {
    /// The variables the guest may read: exact names, or prefixes ending in `*`. Empty: none.
    pub allow: Vec<String>,
}

pub(crate) struct EnvironmentHandler;

impl Handler for EnvironmentHandler {
    type Settings = EnvironmentSettings;
    type State = ();

    fn name(&self) -> &'static str {
        "environment"
    }
    fn interfaces(&self) -> &'static [&'static str] {
        &["theater:simple/environment"]
    }
    fn keys(&self) -> &'static [SettingKey] {
        &[SettingKey {
            key: "allow",
            rule: "every pattern of the child's is covered by one of the parent's (a name by the same name or a prefix of it, a prefix by a shorter or equal prefix); unset: none",
        }]
    }
    fn parse(&self, input: &SettingsInput<'_>) -> Result<EnvironmentSettings, String> {
        let Some(allow) = input.table.get("allow") else {
            return Ok(EnvironmentSettings::default());
        };
        let allow = allow
            .as_array()
            .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_owned)).collect())
            .ok_or("`allow` must be a list of variable names (a trailing `*` matches a prefix)")?;
        Ok(EnvironmentSettings { allow })
    }
    fn attenuate(
        &self,
        parent: &EnvironmentSettings,
        child: EnvironmentSettings,
    ) -> Result<EnvironmentSettings, Refusal> {
        if let Some(wider) = child.allow.iter().find(|p| !covered(&parent.allow, p)) {
            return Err(Refusal::handler(
                "environment",
                "allow",
                format!(
                    "{wider:?} is not within the parent's allow list {:?}",
                    parent.allow
                ),
            ));
        }
        Ok(child)
    }
    fn link(&self, linker: &mut HostLinker<'_>) -> wasmtime::Result<()> {
        let mut env = linker.interface("theater:simple/environment")?;
        env.func("get-var", RecordAs::Value, get_var)?;
        env.func("list-vars", RecordAs::Value, list_vars)?;
        env.func("exists", RecordAs::Value, exists)?;
        Ok(())
    }
    fn new_state(&self, _: &EnvironmentSettings) {}
}

/// Whether every name `pattern` matches is matched by one of `patterns`.
pub(crate) fn covered(patterns: &[String], pattern: &str) -> bool {
    match pattern.strip_suffix('*') {
        // A prefix is covered only by a prefix of it: no list of exact names covers it.
        Some(prefix) => patterns
            .iter()
            .any(|p| p.strip_suffix('*').is_some_and(|q| prefix.starts_with(q))),
        None => allowed(patterns, pattern),
    }
}

/// Whether `name` matches one of the manifest's patterns (exact, or a prefix ending in `*`).
pub(crate) fn allowed(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => p == name,
    })
}

fn patterns(ctx: &ActorCtx) -> &[String] {
    ctx.settings::<EnvironmentSettings>()
        .map_or(&[], |s| s.allow.as_slice())
}

fn visible(ctx: &ActorCtx, name: &str) -> Option<String> {
    allowed(patterns(ctx), name)
        .then(|| std::env::var(name).ok())
        .flatten()
}

fn get_var(
    store: StoreContextMut<'_, ActorCtx>,
    (name,): (String,),
) -> HostFuture<'_, (Option<String>,)> {
    Box::pin(async move { Ok((visible(store.data(), &name),)) })
}

/// The allowed variables, sorted by name so the recorded list does not depend on the order the
/// operating system keeps them in.
fn list_vars(
    store: StoreContextMut<'_, ActorCtx>,
    (): (),
) -> HostFuture<'_, (Vec<(String, String)>,)> {
    Box::pin(async move {
        let patterns = patterns(store.data());
        let mut vars: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| allowed(patterns, k))
            .collect();
        vars.sort();
        Ok((vars,))
    })
}

fn exists(store: StoreContextMut<'_, ActorCtx>, (name,): (String,)) -> HostFuture<'_, (bool,)> {
    Box::pin(async move { Ok((visible(store.data(), &name).is_some(),)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn patterns_are_exact_or_prefix() {
        let p = list(&["HOME", "APP_*"]);
        assert!(allowed(&p, "HOME"));
        assert!(!allowed(&p, "HOMER"));
        assert!(allowed(&p, "APP_"));
        assert!(allowed(&p, "APP_TOKEN"));
        assert!(!allowed(&p, "PATH"));
        assert!(!allowed(&[], "HOME"));
    }

    #[test]
    fn a_child_pattern_must_be_covered_by_the_parents() {
        let parent = list(&["HOME", "APP_*"]);
        for ok in ["HOME", "APP_X", "APP_*", "APP_X*"] {
            assert!(covered(&parent, ok), "{ok}");
        }
        for wider in ["*", "H*", "HOME*", "A*", "PATH", "HOMER"] {
            assert!(!covered(&parent, wider), "{wider}");
        }
        let child = EnvironmentSettings {
            allow: list(&["HOME", "*"]),
        };
        let refusal = EnvironmentHandler
            .attenuate(&EnvironmentSettings { allow: parent }, child)
            .unwrap_err();
        assert_eq!(refusal.key, "allow");
        assert!(refusal.to_string().contains("\"*\""), "{refusal}");
    }
}
