//! `theater new`: scaffold an actor crate with the WIT package in `wit/deps`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::output;

#[derive(clap::Args)]
pub struct Args {
    /// The project's name; also its directory unless --dir is given
    name: String,
    /// The kind of actor to start from
    #[arg(long, default_value = "basic", value_parser = ["basic"])]
    template: String,
    /// Where to create the project [default: ./NAME]
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// wit-bindgen's guest crate; the version the guest toolchain was verified with.
const WIT_BINDGEN: &str = "0.46";

pub fn run(args: Args) -> Result<ExitCode> {
    let name = &args.name;
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--");
    if !valid {
        bail!(
            "invalid project name {name:?}: use lowercase letters, digits and single dashes, starting with a letter (e.g. my-actor)"
        );
    }
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(name));
    if dir.exists()
        && dir
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!("{} already exists and is not empty", dir.display());
    }
    write_project(&dir, name).with_context(|| format!("creating {}", dir.display()))?;
    output::status(&format!(
        "created actor {name} in {} (template {})",
        dir.display(),
        args.template
    ));
    eprintln!(
        "\nNext:\n  cd {}\n  theater build\n  theater run",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write_project(dir: &Path, name: &str) -> Result<()> {
    let crate_name = name.replace('-', "_");
    let files: Vec<(PathBuf, String)> = vec![
        (
            "Cargo.toml".into(),
            format!(
                r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
wit-bindgen = {{ version = "{WIT_BINDGEN}", default-features = false, features = ["macros", "realloc"] }}

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
strip = "debuginfo"

# A project of its own, even when created inside another cargo workspace.
[workspace]
"#
            ),
        ),
        (
            "src/lib.rs".into(),
            format!(
                r#"//! The {name} actor.

mod bindings {{
    wit_bindgen::generate!({{
        world: "{name}",
        path: "wit",
        // Bindings for theater:simple (in wit/deps) are generated here too.
        generate_all,
    }});
}}

use bindings::exports::theater::simple::actor::Guest;
use bindings::theater::simple::runtime::log;

struct Component;

impl Guest for Component {{
    fn init(state: Option<Vec<u8>>, params: (String,)) -> Result<(Option<Vec<u8>>,), String> {{
        let (id,) = params;
        log(&format!("{name} ({{id}}) initialized"));
        Ok((state,))
    }}
}}

bindings::export!(Component with_types_in bindings);
"#
            ),
        ),
        (
            "wit/world.wit".into(),
            format!(
                "package {name}:actor;\n\nworld {name} {{\n    import theater:simple/runtime;\n    export theater:simple/actor;\n}}\n"
            ),
        ),
        (
            "manifest.toml".into(),
            format!(
                r#"name = "{name}"
version = "0.1.0"
description = "A Theater actor"
# Written by `theater build`.
component = "target/wasm32-unknown-unknown/release/{crate_name}.component.wasm"

# Grant capabilities with one [[handler]] table each, e.g.:
# [[handler]]
# type = "message-server"
"#
            ),
        ),
        (".gitignore".into(), "/target\n".into()),
    ];
    for (path, contents) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap())?;
        std::fs::write(&path, contents)?;
    }
    let deps = dir.join("wit/deps/theater-simple");
    std::fs::create_dir_all(&deps)?;
    for (file, contents) in theater::wit::FILES {
        std::fs::write(deps.join(file), contents)?;
    }
    Ok(())
}
