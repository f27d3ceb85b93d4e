//! A test actor whose `init` does what its initial state says, so one component covers many
//! behaviours. The state is `;`-separated commands:
//!
//! - `log:TEXT`: log TEXT
//! - `chain`: call get-chain and log `chain N LASTTYPE`
//! - `shutdown`: call runtime.shutdown
//! - `state:TEXT`: return TEXT as the new state (default: the initial state)
//! - `err:TEXT`: return `Err(TEXT)`
//! - `panic:TEXT`: panic (a trap)
//! - `loop`: spin forever
//! - `alloc:N`: allocate and touch N MiB
//! - `recurse`: recurse until the stack overflows

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "theater:simple/default-actor",
    });
}

use bindings::theater::simple::runtime;

struct Probe;

#[inline(never)]
#[allow(unconditional_recursion)] // on purpose: `recurse` overflows the stack
fn recurse(depth: u64, acc: &mut [u64; 16]) -> u64 {
    acc[(depth % 16) as usize] = depth;
    let mut local = *acc;
    local[0] = recurse(depth + 1, &mut local);
    local[0] ^ local[15]
}

impl bindings::exports::theater::simple::actor::Guest for Probe {
    fn init(state: Option<Vec<u8>>, _: (String,)) -> Result<(Option<Vec<u8>>,), String> {
        let script = String::from_utf8(state.clone().unwrap_or_default()).unwrap_or_default();
        let mut new_state = state;
        for command in script.split(';').filter(|c| !c.is_empty()) {
            let (verb, arg) = command.split_once(':').unwrap_or((command, ""));
            match verb {
                "log" => runtime::log(arg),
                "chain" => {
                    let chain = runtime::get_chain();
                    let last = chain.events.last().map(|e| e.event.event_type.clone());
                    runtime::log(&format!("chain {} {}", chain.events.len(), last.unwrap_or_default()));
                }
                "shutdown" => runtime::shutdown(Some(&b"bye"[..]))?,
                "state" => new_state = Some(arg.as_bytes().to_vec()),
                "err" => return Err(arg.to_string()),
                "panic" => panic!("{arg}"),
                "loop" => {
                    let mut x: u64 = 0;
                    loop {
                        x = core::hint::black_box(x.wrapping_add(1));
                    }
                }
                "alloc" => {
                    let mib: usize = arg.parse().unwrap_or(1);
                    let mut v = vec![0u8; mib << 20];
                    for i in (0..v.len()).step_by(4096) {
                        v[i] = 1;
                    }
                    core::hint::black_box(&v);
                }
                "recurse" => {
                    let mut acc = [0u64; 16];
                    core::hint::black_box(recurse(0, &mut acc));
                }
                other => return Err(format!("probe: unknown command {other:?}")),
            }
        }
        Ok((new_state,))
    }
}

bindings::export!(Probe with_types_in bindings);
