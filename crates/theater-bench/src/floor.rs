//! Floors: what the messaging and spawn workloads' guest work costs without Theater, so that
//! every aim is a ratio measured in one sitting.
//!
//! - `floor`: a bare wasmtime embedding on the engine a runtime builds (`EngineSettings`), with
//!   the same stores (epoch deadline, async calls on fibers), calling the same exports of the
//!   same components. No mailbox, no scheduler, no chain: one thread makes the calls one after
//!   another, and the host functions do the least they can (a sent message is kept in a queue).
//! - `writer-floor`: the chain writer alone, appending the events a recorded counting run
//!   produces (the producer's `send` host call, the consumer's `call-start` and `call-end`).
//!
//! Each figure is printed under the bench name of the workload it bounds, so the table sets
//! them side by side, with allocations per message beside the times.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use theater::EngineSettings;
use theater::chain::{
    CallEnd, CallStart, ChainHead, ChainInfo, ChainWriter, Event, EventKind, Hash, HostCall,
    HostResult,
};
use theater::wasmtime::component::{Component, Func, Instance, Linker, TypedFunc};
use theater::wasmtime::{Engine, Store};

use crate::alloc::counting;
use crate::{Components, Sizes};

/// A bare store's data: the messages its guest sent, in order.
#[derive(Default)]
struct Host {
    sent: VecDeque<(String, Vec<u8>)>,
}

type State = Option<Vec<u8>>;
/// `handle-send`, called as the runtime calls it: the state borrowed, the message moved.
type HandleSend<'s> = TypedFunc<(Option<&'s [u8]>, (Vec<u8>,)), (Result<(State,), String>,)>;
type HandleRequest<'s> =
    TypedFunc<(Option<&'s [u8]>, (String, Vec<u8>)), (Result<(State, (State,)), String>,)>;

/// One bench actor in a bare store, with its state kept by the host as the runtime keeps it.
struct Bare {
    store: Store<Host>,
    id: String,
    state: State,
    handle_send: Func,
    handle_request: Func,
}

const CLIENT: &str = "theater:simple/message-server-client";

fn engine(max_instances: u32) -> Engine {
    EngineSettings {
        max_instances,
        ..Default::default()
    }
    .build_engine()
    .expect("building the engine")
}

/// The bench actor's imports: `send` keeps the message; `request` answers how many messages
/// were sent so far (the counting producer's closing question); anything else traps.
fn linker(engine: &Engine, component: &Component) -> Linker<Host> {
    let mut linker = Linker::<Host>::new(engine);
    let mut host = linker
        .instance("theater:simple/message-server-host")
        .expect("the interface");
    host.func_wrap(
        "send",
        |mut store, (target, msg): (String, Vec<u8>)| -> theater::wasmtime::Result<_> {
            store.data_mut().sent.push_back((target, msg));
            Ok((Ok::<(), String>(()),))
        },
    )
    .expect("send");
    host.func_wrap(
        "request",
        |store, (_target, _msg): (String, Vec<u8>)| -> theater::wasmtime::Result<_> {
            let sent = store.data().sent.len().to_string().into_bytes();
            Ok((Ok::<Vec<u8>, String>(sent),))
        },
    )
    .expect("request");
    linker
        .define_unknown_imports_as_traps(component)
        .expect("the other imports");
    linker
}

/// A store as the runtime makes one: epoch checks compiled in, a deadline set, no ticker.
fn store(engine: &Engine) -> Store<Host> {
    let mut store = Store::new(engine, Host::default());
    store.set_epoch_deadline(1);
    store
}

/// `interface`'s `function`, exported by `instance`.
fn export(instance: &Instance, store: &mut Store<Host>, interface: &str, function: &str) -> Func {
    let interface = instance
        .get_export_index(&mut *store, None, interface)
        .expect("the interface");
    let index = instance
        .get_export_index(&mut *store, Some(&interface), function)
        .expect("the export");
    instance.get_func(&mut *store, index).expect("a function")
}

type Init = TypedFunc<(State, (String,)), (Result<(State,), String>,)>;

/// The component's `init`, its signature checked.
fn init(instance: &Instance, store: &mut Store<Host>) -> Init {
    export(instance, store, theater::ACTOR_INTERFACE, theater::INIT)
        .typed(&*store)
        .expect("init's signature")
}

impl Bare {
    async fn new(engine: &Engine, component: &Component, id: &str) -> Bare {
        let linker = linker(engine, component);
        let mut store = store(engine);
        let instance = linker
            .instantiate_async(&mut store, component)
            .await
            .expect("instantiating");
        let init = init(&instance, &mut store);
        let (Ok((state,)),) = init
            .call_async(&mut store, (None, (id.to_owned(),)))
            .await
            .expect("init")
        else {
            panic!("init returned an error")
        };
        let handle_send = export(&instance, &mut store, CLIENT, "handle-send");
        let handle_request = export(&instance, &mut store, CLIENT, "handle-request");
        // Checked once with owned types, as the runtime checks them.
        handle_send
            .typed::<(State, (Vec<u8>,)), (Result<(State,), String>,)>(&store)
            .expect("handle-send's signature");
        handle_request
            .typed::<(State, (String, Vec<u8>)), (Result<(State, (State,)), String>,)>(&store)
            .expect("handle-request's signature");
        Bare {
            store,
            id: id.to_owned(),
            state,
            handle_send,
            handle_request,
        }
    }

    fn sent(&mut self) -> &mut VecDeque<(String, Vec<u8>)> {
        &mut self.store.data_mut().sent
    }

    async fn send(&mut self, msg: Vec<u8>) {
        // SAFETY: checked in `new` with `State` for the borrowed state; both lower to
        // `option<list<u8>>`, as in the runtime's own calls.
        let typed: HandleSend<'_> = unsafe { TypedFunc::new_unchecked(self.handle_send) };
        self.store.set_epoch_deadline(1);
        let (result,) = typed
            .call_async(&mut self.store, (self.state.as_deref(), (msg,)))
            .await
            .expect("handle-send trapped");
        let (state,) = result.expect("handle-send returned an error");
        self.state = state;
    }

    async fn request(&mut self, id: &str, msg: Vec<u8>) -> State {
        // SAFETY: as in `send`.
        let typed: HandleRequest<'_> = unsafe { TypedFunc::new_unchecked(self.handle_request) };
        self.store.set_epoch_deadline(1);
        let (result,) = typed
            .call_async(
                &mut self.store,
                (self.state.as_deref(), (id.to_owned(), msg)),
            )
            .await
            .expect("handle-request trapped");
        let (state, (answer,)) = result.expect("handle-request returned an error");
        self.state = state;
        answer
    }
}

fn report(bench: &str, n: u64, seconds: f64, unit: &str, value: f64, allocations: f64) {
    println!(
        "{{\"bench\":\"{bench}\",\"mode\":\"floor\",\"n\":{n},\"seconds\":{seconds:.3},\"{unit}\":{value:.3},\"allocations_per_message\":{allocations:.2}}}"
    );
}

/// Ping-pong and counting on two bare stores. A round trip is the two warm export calls a
/// send/send round trip makes (the ping's receiver answers, the pong's receiver sends the
/// next ping), each making one host call; the request figure is the same pair, since a
/// request crosses the same two boundaries. Counting is the producer's loop of `send` host
/// calls plus one `handle-send` call of the consumer per message.
pub(crate) fn messaging(sizes: &Sizes, components: &Components) {
    let sizes = sizes.clone();
    let component_path = components.bench_actor.clone();
    crate::on_worker(Some(1), async move {
        let engine = engine(100);
        let component = Component::from_file(&engine, &component_path).expect("compiling");
        let mut a = Bare::new(&engine, &component, "a").await;
        let mut b = Bare::new(&engine, &component, "b").await;

        for bench in ["ping-pong-request", "ping-pong-send"] {
            let n = sizes.scaled(200_000);
            // `ss` leaves `a` waiting for pongs; more than will come, so it never answers.
            let ss = format!("ss {} {}", n + 1_000_000, b.id);
            a.request("r", ss.into_bytes()).await;
            let ping = a.sent().pop_front().expect("the first ping").1;
            // A ping to `b`, whose pong goes to `a`, which sends the next ping.
            let round = async |a: &mut Bare, b: &mut Bare| {
                b.send(ping.clone()).await;
                let pong = b.sent().pop_front().expect("a pong").1;
                a.send(pong).await;
                a.sent().pop_front().expect("a ping");
            };
            for _ in 0..1_000 {
                round(&mut a, &mut b).await;
            }
            let start = Instant::now();
            let ((), counted) = counting(async {
                for _ in 0..n {
                    round(&mut a, &mut b).await;
                }
            })
            .await;
            let t = start.elapsed().as_secs_f64();
            let per = counted.allocations as f64 / n as f64;
            report(bench, n, t, "round_trip_us", t * 1e6 / n as f64, per);
        }

        let mut consumer = Bare::new(&engine, &component, "consumer").await;
        let n = sizes.scaled(1_000_000);
        let start = Instant::now();
        let (count, counted) = counting(async {
            let count = a
                .request("r", format!("count {n} {}", consumer.id).into_bytes())
                .await;
            while let Some((_, msg)) = a.sent().pop_front() {
                consumer.send(msg).await;
            }
            count
        })
        .await;
        let t = start.elapsed().as_secs_f64();
        assert_eq!(
            count,
            Some(n.to_string().into_bytes()),
            "the producer's count"
        );
        let counted_by_consumer =
            u64::from_le_bytes(consumer.state.as_ref().unwrap()[..8].try_into().unwrap());
        assert_eq!(counted_by_consumer, n, "the consumer's count");
        let per = counted.allocations as f64 / n as f64;
        report("counting", n, t, "messages_per_second", n as f64 / t, per);
    });
}

/// Spawn on a bare embedding: instantiate the minimal component from an `InstancePre` and
/// call its `init`, for as many actors as the spawn workload, all kept live.
pub(crate) fn spawn(sizes: &Sizes, components: &Components) {
    let actors = sizes.actors;
    let component_path = components.minimal.clone();
    crate::on_worker(None, async move {
        let engine = engine(actors as u32 + 100);
        let component = Component::from_file(&engine, &component_path).expect("compiling");
        let mut linker = Linker::<Host>::new(&engine);
        linker
            .define_unknown_imports_as_traps(&component)
            .expect("the imports");
        let pre = linker.instantiate_pre(&component).expect("linking");
        let mut live = Vec::with_capacity(actors + 50);
        let spawn_one = async |live: &mut Vec<(Store<Host>, Instance)>| {
            let mut store = store(&engine);
            let instance = pre
                .instantiate_async(&mut store)
                .await
                .expect("instantiating");
            let init = init(&instance, &mut store);
            let (result,) = init
                .call_async(&mut store, (None, ("id".to_owned(),)))
                .await
                .expect("init");
            result.expect("init returned an error");
            live.push((store, instance));
        };
        for _ in 0..50 {
            spawn_one(&mut live).await;
        }
        let rss_before = crate::rss_bytes();
        let start = Instant::now();
        let ((), counted) = counting(async {
            for _ in 0..actors {
                spawn_one(&mut live).await;
            }
        })
        .await;
        let t = start.elapsed().as_secs_f64();
        let rss = crate::rss_bytes().saturating_sub(rss_before) / actors as u64;
        println!(
            "{{\"bench\":\"spawn\",\"mode\":\"floor\",\"actors\":{actors},\"us_per_spawn\":{:.2},\"spawns_per_sec\":{:.0},\"rss_bytes_per_idle_actor\":{rss},\"allocations_per_spawn\":{:.1}}}",
            t * 1e6 / actors as f64,
            actors as f64 / t,
            counted.allocations as f64 / actors as f64,
        );
    });
}

/// The chain writer alone, fed the events a recorded counting run of `n` messages appends:
/// the producer's `send` host call, the consumer's `call-start` and `call-end`, each encoded,
/// linked and appended through an appender as the runtime does it; then flushed.
pub(crate) fn writer(sizes: &Sizes) {
    let n = sizes.scaled(1_000_000);
    crate::on_worker(None, async move {
        let dir = tempfile::tempdir().expect("a temporary data dir");
        let writer = Arc::new(ChainWriter::open(dir.path()).expect("opening the chain store"));
        let chain = |id: &str| {
            let info = ChainInfo {
                actor_id: id.to_owned(),
                name: id.to_owned(),
                parent: None,
                created_ms: 0,
                head: ChainHead::default(),
                signature: None,
                manifest_dir: None,
            };
            (writer.appender(id.into(), Some(info)), ChainHead::default())
        };
        let (producer, mut producer_head) = chain("producer");
        let (consumer, mut consumer_head) = chain("consumer");
        let target = "0123456789abcdef0123456789abcdef".to_owned();
        let msg = b"c".to_vec();
        let mut scratch = Vec::new();
        let mut state = Hash::of(&[0; 64]);
        let start = Instant::now();
        let ((), counted) = counting(async {
            for i in 0..n {
                let id = format!("1234abcd-{i:x}");
                let send = EventKind::HostCall(HostCall {
                    interface: "theater:simple/message-server-host".into(),
                    function: "send".into(),
                    params: theater::plugin::encode(&(target.clone(), msg.clone())).unwrap(),
                    result: HostResult::Value(
                        theater::plugin::encode(&(Ok::<(), String>(()),)).unwrap(),
                    ),
                    message_id: Some(id.clone()),
                });
                append(&producer, &mut producer_head, send, &mut scratch).await;
                let export = "theater:simple/message-server-client.handle-send";
                let call_start = EventKind::CallStart(CallStart {
                    export: export.into(),
                    state: Some(state),
                    params: theater::plugin::encode(&(msg.clone(),)).unwrap(),
                    message_id: Some(id),
                    sender: Some(target.clone()),
                });
                append(&consumer, &mut consumer_head, call_start, &mut scratch).await;
                state = Hash::of(&i.to_le_bytes());
                let call_end = EventKind::CallEnd(CallEnd {
                    export: export.into(),
                    outcome: Ok(theater::plugin::encode(&()).unwrap()),
                    state: Some(state),
                });
                append(&consumer, &mut consumer_head, call_end, &mut scratch).await;
            }
        })
        .await;
        let queued = start.elapsed().as_secs_f64();
        writer.flush().expect("committing");
        let committed = start.elapsed().as_secs_f64();
        let per = counted.allocations as f64 / n as f64;
        println!(
            "{{\"bench\":\"counting\",\"mode\":\"writer-floor\",\"n\":{n},\"seconds\":{committed:.3},\"messages_per_second\":{:.3},\"queued_per_second\":{:.0},\"allocations_per_message\":{per:.2}}}",
            n as f64 / committed,
            n as f64 / queued,
        );
    });
}

async fn append(
    appender: &theater::chain::ChainAppender,
    head: &mut ChainHead,
    kind: EventKind,
    scratch: &mut Vec<u8>,
) {
    Event::new(kind).encode_to(scratch);
    let (index, hash) = head.link(scratch);
    appender
        .append(index, &hash, scratch)
        .await
        .expect("appending");
}
