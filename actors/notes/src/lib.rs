//! The notes example: keeps a note in a store (content-addressed, under a label) and appends
//! it to a file beneath its filesystem root, then runs `wc -l` (the one program its manifest
//! allows) on the file and logs what it says. Each run adds a note: run it twice and the count
//! grows, from the store and the file the first run left.

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "theater:simple/notes-actor",
    });
}

use bindings::exports::theater::simple::actor::Guest as Actor;
use bindings::exports::theater::simple::process_handlers::Guest as ProcessHandlers;
use bindings::theater::simple::process::{self, OutputMode, ProcessConfig};
use bindings::theater::simple::{filesystem, runtime, store};

type State = Option<Vec<u8>>;

const STORE: &str = "notes";
const FILE: &str = "notes.txt";

struct Notes;

impl Actor for Notes {
    fn init(state: State, (id,): (String,)) -> Result<(State,), String> {
        // The previous note, if a run left one: the store answers by label.
        let count = match store::get_by_label(STORE, "latest")? {
            Some(previous) => {
                let text = String::from_utf8_lossy(&store::get(STORE, &previous)?).into_owned();
                runtime::log(&format!("the store's latest note ({}): {text}", &previous.hash[..12]));
                text.split('#').nth(1).and_then(|n| n.split(' ').next()?.parse().ok()).unwrap_or(0)
            }
            None => {
                runtime::log("the store has no note yet");
                0
            }
        };
        let note = format!("note #{} by actor {}", count + 1, &id[..8]);
        let kept = store::store_at_label(STORE, "latest", note.as_bytes())?;
        runtime::log(&format!("stored {note:?} as {}", &kept.hash[..12]));

        // The same note, appended to a file beneath the root.
        let mut file = if filesystem::path_exists(FILE)? {
            String::from_utf8_lossy(&filesystem::read_file(FILE)?).into_owned()
        } else {
            String::new()
        };
        file.push_str(&note);
        file.push('\n');
        filesystem::write_file(FILE, &file)?;
        runtime::log(&format!("appended it to {FILE}"));

        // Counted by the one allowed tool; its output and exit come back as calls below.
        let pid = process::os_spawn(&ProcessConfig {
            program: "wc".into(),
            args: vec!["-l".into(), FILE.into()],
            cwd: None,
            env: Vec::new(),
            buffer_size: 4096,
            stdout_mode: OutputMode::LineByLine,
            stderr_mode: OutputMode::LineByLine,
            chunk_size: None,
            execution_timeout: Some(5_000),
        })?;
        runtime::log(&format!("started wc (process {pid})"));
        Ok((state,))
    }
}

impl ProcessHandlers for Notes {
    fn handle_stdout(state: State, (_, line): (u64, Vec<u8>)) -> Result<(State,), String> {
        runtime::log(&format!("wc says: {}", String::from_utf8_lossy(&line).trim()));
        Ok((state,))
    }

    fn handle_stderr(state: State, (_, line): (u64, Vec<u8>)) -> Result<(State,), String> {
        runtime::log(&format!("wc complains: {}", String::from_utf8_lossy(&line)));
        Ok((state,))
    }

    fn handle_exit(state: State, (_, code): (u64, i32)) -> Result<(State,), String> {
        runtime::log(&format!("wc exited with {code}; done"));
        runtime::shutdown(None)?;
        Ok((state,))
    }
}

bindings::export!(Notes with_types_in bindings);
