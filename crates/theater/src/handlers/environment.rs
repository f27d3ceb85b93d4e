//! `theater:simple/environment`: the host's environment variables, only those the manifest
//! allows (`allow = ["NAME", "PREFIX_*"]` in the `environment` handler table; nothing by
//! default). Every result is recorded.

use wasmtime::StoreContextMut;
use wasmtime::component::Linker;

use super::{HostFuture, InterfaceBuilder, RecordAs};
use crate::actor::ActorCtx;

pub(crate) fn add_to_linker(
    linker: &mut Linker<ActorCtx>,
    registered: &mut Vec<(&'static str, &'static str)>,
) -> wasmtime::Result<()> {
    let mut env = InterfaceBuilder::new(linker, "theater:simple/environment", registered)?;
    env.func("get-var", RecordAs::Value, get_var)?;
    env.func("list-vars", RecordAs::Value, list_vars)?;
    env.func("exists", RecordAs::Value, exists)?;
    Ok(())
}

/// Whether `name` matches one of the manifest's patterns (exact, or a prefix ending in `*`).
pub(crate) fn allowed(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => p == name,
    })
}

fn visible(ctx: &ActorCtx, name: &str) -> Option<String> {
    allowed(&ctx.manifest.environment_allow, name)
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
        let patterns = &store.data().manifest.environment_allow;
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
    use super::allowed;

    #[test]
    fn patterns_are_exact_or_prefix() {
        let p = vec!["HOME".to_owned(), "APP_*".to_owned()];
        assert!(allowed(&p, "HOME"));
        assert!(!allowed(&p, "HOMER"));
        assert!(allowed(&p, "APP_"));
        assert!(allowed(&p, "APP_TOKEN"));
        assert!(!allowed(&p, "PATH"));
        assert!(!allowed(&[], "HOME"));
    }
}
