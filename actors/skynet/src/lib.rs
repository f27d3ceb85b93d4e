//! The skynet benchmark's actor (crates/theater-bench/src/skynet.rs): a tree of 1,111,111
//! actors, ten children below each of six levels.
//!
//! A node gets `skynet NUMBER LEVELS` followed by a newline and the inline manifest its
//! children are spawned from. With `LEVELS` 0 it is a leaf and answers with its number;
//! otherwise it spawns ten children, sends child `i` `skynet NUMBER*10+i LEVELS-1`, returns,
//! and answers with the sum once all ten have answered. The root gets the message as a request
//! (deferred, answered with the sum in decimal); every other node as a send, and it answers its
//! parent with a send of `s` + the sum (8 bytes, little-endian). A node that has answered shuts
//! down, as a process that returns does.
//!
//! Everything a node keeps is in its state, so that a hibernated node wakes with it:
//! `pending: u8, root: u8, sum: u64, me_len: u16, me, parent` (for the root, the request id
//! to answer is kept in the parent's place).

mod bindings {
    wit_bindgen::generate!({
        inline: "
            package theater:skynet;
            world skynet {
                import theater:simple/runtime;
                import theater:simple/message-server-host;
                import theater:simple/supervisor;
                export theater:simple/actor;
                export theater:simple/message-server-client;
            }
        ",
        path: "../../wit",
        world: "theater:skynet/skynet",
        generate_all,
    });
}

use bindings::exports::theater::simple::actor::Guest as Actor;
use bindings::exports::theater::simple::message_server_client::Guest as Client;
use bindings::theater::simple::types::ChannelAccept;
use bindings::theater::simple::{message_server_host as msg, runtime, supervisor};

type State = Option<Vec<u8>>;

/// What a node keeps between calls.
struct Node {
    pending: u8,
    root: bool,
    sum: u64,
    me: String,
    /// The parent's id; for the root, the request id to answer (empty until it has one).
    parent: String,
}

impl Node {
    fn load(state: &State) -> Result<Node, String> {
        let s = state.as_deref().ok_or("skynet: no state")?;
        if s.len() < 12 {
            return Err("skynet: state too short".into());
        }
        let me_len = u16::from_le_bytes([s[10], s[11]]) as usize;
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|e| e.to_string());
        Ok(Node {
            pending: s[0],
            root: s[1] == 1,
            sum: u64::from_le_bytes(s[2..10].try_into().unwrap()),
            me: text(s.get(12..12 + me_len).ok_or("skynet: state too short")?)?,
            parent: text(&s[12 + me_len..])?,
        })
    }

    fn store(&self) -> State {
        let mut s = Vec::with_capacity(12 + self.me.len() + self.parent.len());
        s.push(self.pending);
        s.push(self.root as u8);
        s.extend_from_slice(&self.sum.to_le_bytes());
        s.extend_from_slice(&(self.me.len() as u16).to_le_bytes());
        s.extend_from_slice(self.me.as_bytes());
        s.extend_from_slice(self.parent.as_bytes());
        Some(s)
    }

    /// Starts this node's part of the tree: answers at once as a leaf, else spawns ten.
    fn start(&mut self, m: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(m).map_err(|e| e.to_string())?;
        let (head, manifest) = text.split_once('\n').ok_or("skynet: no manifest")?;
        let mut words = head.split(' ').skip(1).map(str::parse::<u64>);
        let (Some(Ok(number)), Some(Ok(levels))) = (words.next(), words.next()) else {
            return Err(format!("skynet: expected `skynet NUMBER LEVELS`, got {head:?}"));
        };
        if levels == 0 {
            self.sum = number;
            return self.answer();
        }
        self.pending = 10;
        for i in 0..10 {
            let child = supervisor::spawn(manifest, Some(self.me.as_bytes()))?;
            let order = format!("skynet {} {}\n{manifest}", number * 10 + i, levels - 1);
            msg::send(&child, order.as_bytes())?;
        }
        Ok(())
    }

    /// Tells the parent (or the root's requester) that this subtree failed, and why.
    fn fail(&self, why: &str) -> Result<(), String> {
        runtime::log(&format!("skynet: {why}"));
        if self.root {
            msg::cancel_request(&self.parent)
        } else {
            msg::send(&self.parent, format!("f{why}").as_bytes())
        }
    }

    /// Gives the sum to the parent (or the root's requester), then ends this node.
    fn answer(&self) -> Result<(), String> {
        if self.root {
            msg::respond_to_request(&self.parent, self.sum.to_string().as_bytes())?;
        } else {
            let mut m = vec![b's'];
            m.extend_from_slice(&self.sum.to_le_bytes());
            msg::send(&self.parent, &m)?;
            runtime::shutdown(None)?;
        }
        Ok(())
    }
}

struct Skynet;

impl Actor for Skynet {
    fn init(state: State, (me,): (String,)) -> Result<(State,), String> {
        let parent = String::from_utf8(state.unwrap_or_default()).map_err(|e| e.to_string())?;
        Ok((Node { pending: 0, root: false, sum: 0, me, parent }.store(),))
    }
}

impl Client for Skynet {
    fn handle_send(state: State, (m,): (Vec<u8>,)) -> Result<(State,), String> {
        let mut node = Node::load(&state)?;
        let done = match m.first() {
            Some(b's') if m.len() == 9 => {
                node.sum += u64::from_le_bytes(m[1..9].try_into().unwrap());
                node.pending -= 1;
                if node.pending == 0 { node.answer() } else { Ok(()) }
            }
            // A failure below: passed up, so that the root answers rather than waiting forever.
            Some(b'f') => Err(String::from_utf8_lossy(&m[1..]).into_owned()),
            _ => node.start(&m),
        };
        if let Err(why) = done {
            node.fail(&why)?;
        }
        Ok((node.store(),))
    }

    fn handle_request(state: State, (id, m): (String, Vec<u8>)) -> Result<(State, (Option<Vec<u8>>,)), String> {
        let mut node = Node::load(&state)?;
        if !node.parent.is_empty() {
            return Err("skynet: only the root takes a request".into());
        }
        node.root = true;
        node.parent = id;
        node.start(&m)?;
        Ok((node.store(), (None,)))
    }

    fn handle_channel_open(state: State, _: (String, Vec<u8>)) -> Result<(State, (ChannelAccept,)), String> {
        Ok((state, (ChannelAccept { accepted: false, message: None },)))
    }

    fn handle_channel_message(state: State, _: (String, Vec<u8>)) -> Result<(State,), String> {
        Ok((state,))
    }

    fn handle_channel_close(state: State, _: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

bindings::export!(Skynet with_types_in bindings);
