//! The wasmtime engine every actor shares, and the epoch ticker that keeps scheduling fair.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. A running guest yields to the scheduler at each tick, and the
/// CPU budget of a call is counted in ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Core instances a `wit-bindgen` component needs (the module plus adapter shims), with room.
const CORE_INSTANCES_PER_COMPONENT: u32 = 8;
const TABLES_PER_COMPONENT: u32 = 4;

/// Settings of the shared engine.
#[derive(Debug, Clone, Copy)]
pub struct EngineSettings {
    /// Instances that can be live at once (the pool's size).
    pub max_instances: u32,
    /// The largest memory any actor may be granted, in MiB (each pool slot's reservation).
    pub max_memory_mb: u32,
    /// Export calls that can be running or suspended in a host call at once (fiber stacks).
    pub max_concurrent_calls: u32,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            max_instances: 10_000,
            max_memory_mb: 256,
            max_concurrent_calls: 1_000,
        }
    }
}

pub(crate) fn build_engine(settings: &EngineSettings) -> wasmtime::Result<Engine> {
    let memory_bytes = u64::from(settings.max_memory_mb) << 20;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(settings.max_instances)
        .total_core_instances(settings.max_instances * CORE_INSTANCES_PER_COMPONENT)
        .total_memories(settings.max_instances)
        .total_tables(settings.max_instances * TABLES_PER_COMPONENT)
        .max_memories_per_component(1)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memory_size(memory_bytes as usize)
        .total_stacks(settings.max_concurrent_calls)
        // Reset a freed slot's first pages with memset instead of madvise: reusing a slot then
        // changes no mapping, which is most of the cost of a spawn otherwise.
        .linear_memory_keep_resident(128 << 10)
        .table_keep_resident(16 << 10)
        .async_stack_keep_resident(64 << 10)
        .max_unused_warm_slots(settings.max_instances.min(1_000));

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        // Determinism for replay: the same inputs give the same results on any host.
        .cranelift_nan_canonicalization(true)
        .relaxed_simd_deterministic(true)
        // Small reservations (explicit bounds checks) so that many slots fit in address space.
        .memory_reservation(memory_bytes)
        .memory_guard_size(64 << 10)
        .memory_reservation_for_growth(0)
        .guard_before_linear_memory(false)
        .max_wasm_stack(256 << 10)
        .async_stack_size(512 << 10)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("theater-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
