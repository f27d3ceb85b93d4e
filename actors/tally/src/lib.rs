//! A test actor for handlers defined outside the runtime: it imports `test:plugin/tally`,
//! which only a handler registered by the test provides. Each `handle-send` message is a
//! number to add; the state is the total the host answered, as text.

mod bindings {
    wit_bindgen::generate!({
        path: ["../../wit", "wit"],
        world: "test:plugin/tally-actor",
        generate_all,
    });
}

use bindings::exports::theater::simple::actor::Guest as Actor;
use bindings::exports::theater::simple::message_server_client::Guest as Client;
use bindings::test::plugin::tally;
use bindings::theater::simple::types::ChannelAccept;

type State = Option<Vec<u8>>;

struct Tally;

impl Actor for Tally {
    fn init(state: State, _: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

impl Client for Tally {
    fn handle_send(_: State, (m,): (Vec<u8>,)) -> Result<(State,), String> {
        let n: u64 = String::from_utf8_lossy(&m)
            .trim()
            .parse()
            .map_err(|_| "send a number".to_string())?;
        let total = tally::add(n);
        Ok((Some(total.to_string().into_bytes()),))
    }

    fn handle_request(state: State, _: (String, Vec<u8>)) -> Result<(State, (Option<Vec<u8>>,)), String> {
        Ok((state.clone(), (state,)))
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

bindings::export!(Tally with_types_in bindings);
