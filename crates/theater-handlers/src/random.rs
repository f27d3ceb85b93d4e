//! `theater:simple/random`: random numbers from the operating system. Granted by the `random`
//! handler.
//!
//! Every result is recorded, so a replay gets the same numbers without a generator.

use theater::plugin::wasmtime;
use theater::plugin::wasmtime::StoreContextMut;

use theater::plugin::ActorCtx;
use theater::plugin::{HostFuture, HostLinker, Plain, RecordAs};

type Answer<T> = (Result<T, String>,);

/// The most bytes one `random-bytes` call returns, so a guest cannot make the host allocate
/// without bound.
pub const MAX_RANDOM_BYTES: u32 = 1 << 20;

/// The `random` handler: no settings.
pub(crate) const HANDLER: Plain = Plain {
    name: "random",
    interfaces: &["theater:simple/random"],
    link: Some(link),
    always_granted: false,
};

fn link(linker: &mut HostLinker<'_>) -> wasmtime::Result<()> {
    let mut random = linker.interface("theater:simple/random")?;
    random.func("random-bytes", RecordAs::Value, random_bytes)?;
    random.func("random-range", RecordAs::Value, random_range)?;
    random.func("random-float", RecordAs::Value, random_float)?;
    random.func("generate-uuid", RecordAs::Value, generate_uuid)?;
    Ok(())
}

fn fill(buf: &mut [u8]) -> Result<(), String> {
    getrandom::fill(buf).map_err(|e| format!("the operating system's random source failed: {e}"))
}

fn next_u64() -> Result<u64, String> {
    let mut buf = [0u8; 8];
    fill(&mut buf)?;
    Ok(u64::from_le_bytes(buf))
}

fn random_bytes(
    _: StoreContextMut<'_, ActorCtx>,
    (length,): (u32,),
) -> HostFuture<'_, Answer<Vec<u8>>> {
    Box::pin(async move {
        if length > MAX_RANDOM_BYTES {
            return Ok((Err(format!(
                "random-bytes: {length} bytes asked for, at most {MAX_RANDOM_BYTES} per call"
            )),));
        }
        let mut buf = vec![0u8; length as usize];
        Ok((fill(&mut buf).map(|()| buf),))
    })
}

/// A uniform number in `[min, max)`.
fn random_range(
    _: StoreContextMut<'_, ActorCtx>,
    (min, max): (u64, u64),
) -> HostFuture<'_, Answer<u64>> {
    Box::pin(async move { Ok((uniform_below(min, max),)) })
}

fn uniform_below(min: u64, max: u64) -> Result<u64, String> {
    if min >= max {
        return Err(format!(
            "random-range: min ({min}) must be less than max ({max}); the range is [min, max)"
        ));
    }
    let span = max - min;
    // Rejection sampling: drop the top partial copy of the range so every value is equally likely.
    let zone = u64::MAX - (u64::MAX % span);
    loop {
        let x = next_u64()?;
        if x < zone {
            return Ok(min + x % span);
        }
    }
}

/// A uniform float in `[0, 1)` with 53 bits of randomness.
fn random_float(_: StoreContextMut<'_, ActorCtx>, (): ()) -> HostFuture<'_, Answer<f64>> {
    Box::pin(async move { Ok((next_u64().map(|x| (x >> 11) as f64 / (1u64 << 53) as f64),)) })
}

fn generate_uuid(_: StoreContextMut<'_, ActorCtx>, (): ()) -> HostFuture<'_, Answer<String>> {
    Box::pin(async move { Ok((Ok(uuid::Uuid::new_v4().to_string()),)) })
}

#[cfg(test)]
mod tests {
    use super::uniform_below;

    #[test]
    fn range_is_half_open_and_checked() {
        assert!(uniform_below(5, 5).unwrap_err().contains("less than"));
        assert!(uniform_below(6, 5).is_err());
        for _ in 0..1000 {
            assert_eq!(uniform_below(7, 8).unwrap(), 7);
            let x = uniform_below(10, 13).unwrap();
            assert!((10..13).contains(&x));
        }
        let top = uniform_below(u64::MAX - 1, u64::MAX).unwrap();
        assert_eq!(top, u64::MAX - 1);
    }
}
