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
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            max_instances: 10_000,
            max_memory_mb: 256,
        }
    }
}

impl EngineSettings {
    /// The engine a runtime with these settings shares among its actors. Public so that an
    /// embedding can measure bare wasmtime on the same configuration (`theater bench`'s
    /// floors); a runtime makes its own.
    pub fn build_engine(&self) -> wasmtime::Result<Engine> {
        build_engine(self)
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
        // A store keeps the fiber stack of its last call for the next one (wasmtime offers no
        // public way to hand it back), so every live instance holds a stack.
        .total_stacks(settings.max_instances)
        // A freed slot is reset with madvise, not memset (`*_keep_resident` stays 0): memset
        // faults in pages the guest never touched, so hibernating actors would gain memory
        // (measured: 40 KB per hibernated actor at 128 KiB kept resident, 4.7 KB at 0, with no
        // spawn-time difference beyond noise).
        .max_unused_warm_slots(settings.max_instances.min(1_000))
        // Freed slots are reset in batches: one TLB shootdown across the cores per batch
        // instead of one per exiting or hibernating actor (measured on skynet: about 15% less
        // time, a third less system time). At most cores * 63 slots wait to be reset.
        .decommit_batch_size(64);

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
