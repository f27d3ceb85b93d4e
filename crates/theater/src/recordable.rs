//! How a host call's params and results, and an export call's, are written into the chain and
//! read back in a replay: the [`Recordable`] trait.
//!
//! The encoding is the chain's payload encoding (postcard, `docs/chain-format.md`,
//! "Payloads"): a tuple is its elements one after another, an `option` a 0 or 1 byte and the
//! value, a `list` a varint length and the elements, a `result` a varint variant index (0 `ok`,
//! 1 `err`) and the value. The impls here write exactly that, so a value serde can describe and
//! one it cannot (a resource handle, a generated type with its own encoding) sit in one tuple.
//!
//! - Types serde describes take the serde impl by implementing the marker
//!   [`RecordWithSerde`] (the WIT types of `theater:simple` do, see `crate::bindings`;
//!   [`record_with_serde!`](crate::record_with_serde) does it for a list of types).
//! - Tuples, `Option`, `Vec` and `Result` of recordable values are recordable.
//! - A [`wasmtime::component::Resource`] is recorded as its handle's number in the table of
//!   the actor's instance: a per-instance logical id, the same in a replay of that instance.
//! - Anything else implements [`Recordable`] itself.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A value that goes into an actor's chain, and comes back from it in a replay.
pub trait Recordable: Sized + Send + Sync + 'static {
    /// Appends the value's encoding to `out`.
    fn record(&self, out: &mut Vec<u8>) -> Result<(), String>;
    /// Reads a value from the front of `input`, leaving the rest.
    fn replay(input: &mut &[u8]) -> Result<Self, String>;
}

/// Marks a type whose serde impls record it (postcard). Implement it for a type of your own
/// with [`record_with_serde!`](crate::record_with_serde).
pub trait RecordWithSerde: Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T: RecordWithSerde> Recordable for T {
    fn record(&self, out: &mut Vec<u8>) -> Result<(), String> {
        let taken = std::mem::take(out);
        *out = postcard::to_extend(self, taken).map_err(|e| e.to_string())?;
        Ok(())
    }
    fn replay(input: &mut &[u8]) -> Result<Self, String> {
        let (value, rest) = postcard::take_from_bytes(input).map_err(|e| e.to_string())?;
        *input = rest;
        Ok(value)
    }
}

/// Implements [`RecordWithSerde`] for each type named: its serde impls record it.
#[macro_export]
macro_rules! record_with_serde {
    ($($ty:ty),* $(,)?) => {
        $(impl $crate::plugin::RecordWithSerde for $ty {})*
    };
}

record_with_serde!(
    bool, char, u8, u16, u32, u64, i8, i16, i32, i64, f32, f64, String
);

/// The whole encoding of `value`.
pub fn encode<T: Recordable>(value: &T) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    value.record(&mut out)?;
    Ok(out)
}

/// A value from the whole of `bytes`: trailing bytes are an error, as in the payload decoder.
pub fn decode<T: Recordable>(mut bytes: &[u8]) -> Result<T, String> {
    let value = T::replay(&mut bytes)?;
    if !bytes.is_empty() {
        return Err(format!("{} bytes left over after the value", bytes.len()));
    }
    Ok(value)
}

/// The longest list of elements that take no bytes (`list<tuple<>>`) a replay decodes.
const MAX_EMPTY_ELEMENTS: usize = 1 << 16;

fn write_varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn read_varint(input: &mut &[u8]) -> Result<u64, String> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input
            .split_first()
            .ok_or("the input ended inside a number")?;
        *input = rest;
        n |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(n);
        }
    }
    Err("a number longer than ten bytes".into())
}

fn read_byte(input: &mut &[u8]) -> Result<u8, String> {
    let (&byte, rest) = input.split_first().ok_or("the input ended early")?;
    *input = rest;
    Ok(byte)
}

impl Recordable for () {
    fn record(&self, _: &mut Vec<u8>) -> Result<(), String> {
        Ok(())
    }
    fn replay(_: &mut &[u8]) -> Result<(), String> {
        Ok(())
    }
}

impl<T: Recordable> Recordable for Option<T> {
    fn record(&self, out: &mut Vec<u8>) -> Result<(), String> {
        match self {
            None => {
                out.push(0);
                Ok(())
            }
            Some(value) => {
                out.push(1);
                value.record(out)
            }
        }
    }
    fn replay(input: &mut &[u8]) -> Result<Self, String> {
        match read_byte(input)? {
            0 => Ok(None),
            1 => Ok(Some(T::replay(input)?)),
            tag => Err(format!("an option tagged {tag}")),
        }
    }
}

impl<T: Recordable, E: Recordable> Recordable for Result<T, E> {
    fn record(&self, out: &mut Vec<u8>) -> Result<(), String> {
        match self {
            Ok(value) => {
                out.push(0);
                value.record(out)
            }
            Err(error) => {
                out.push(1);
                error.record(out)
            }
        }
    }
    fn replay(input: &mut &[u8]) -> Result<Self, String> {
        match read_varint(input)? {
            0 => Ok(Ok(T::replay(input)?)),
            1 => Ok(Err(E::replay(input)?)),
            tag => Err(format!("a result tagged {tag}")),
        }
    }
}

impl<T: Recordable> Recordable for Vec<T> {
    fn record(&self, out: &mut Vec<u8>) -> Result<(), String> {
        write_varint(self.len() as u64, out);
        // Bytes (messages, bodies, states) are most of what a chain holds: copied whole.
        if let Some(bytes) = (self as &dyn std::any::Any).downcast_ref::<Vec<u8>>() {
            out.extend_from_slice(bytes);
            return Ok(());
        }
        self.iter().try_for_each(|value| value.record(out))
    }
    fn replay(input: &mut &[u8]) -> Result<Self, String> {
        let len = usize::try_from(read_varint(input)?).map_err(|e| e.to_string())?;
        if std::any::TypeId::of::<T>() == std::any::TypeId::of::<u8>() {
            let (head, rest) = input
                .split_at_checked(len)
                .ok_or("the input ended inside a list")?;
            *input = rest;
            let bytes: Box<dyn std::any::Any> = Box::new(head.to_vec());
            return Ok(*bytes.downcast::<Vec<T>>().expect("`T` is `u8`"));
        }
        // An element of a sized type takes at least one byte: a length past what is left is a
        // lie, refused before it costs a loop or an allocation. (A chain file may be hostile.)
        let most = if std::mem::size_of::<T>() == 0 {
            MAX_EMPTY_ELEMENTS
        } else {
            input.len()
        };
        if len > most {
            return Err(format!("a list of {len} elements in {} bytes", input.len()));
        }
        let mut list = Vec::with_capacity(len);
        for _ in 0..len {
            list.push(T::replay(input)?);
        }
        Ok(list)
    }
}

macro_rules! tuples {
    ($($name:ident)+) => {
        impl<$($name: Recordable),+> Recordable for ($($name,)+) {
            #[allow(non_snake_case)]
            fn record(&self, out: &mut Vec<u8>) -> Result<(), String> {
                let ($($name,)+) = self;
                $($name.record(out)?;)+
                Ok(())
            }
            fn replay(input: &mut &[u8]) -> Result<Self, String> {
                Ok(($($name::replay(input)?,)+))
            }
        }
    };
}

tuples!(A);
tuples!(A B);
tuples!(A B C);
tuples!(A B C D);
tuples!(A B C D E);
tuples!(A B C D E F);
tuples!(A B C D E F G);
tuples!(A B C D E F G H);

impl<T: 'static> Recordable for wasmtime::component::Resource<T> {
    fn record(&self, out: &mut Vec<u8>) -> Result<(), String> {
        write_varint(u64::from(self.rep()), out);
        Ok(())
    }
    fn replay(input: &mut &[u8]) -> Result<Self, String> {
        let rep = u32::try_from(read_varint(input)?).map_err(|e| e.to_string())?;
        // Borrowed or owned alike: in a replay the handle goes back to the guest as the
        // number the instance gave it when the run was recorded.
        Ok(wasmtime::component::Resource::new_own(rep))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chain format is postcard's: these impls must write what postcard writes.
    #[test]
    fn the_encoding_is_postcards() {
        fn same<T: Recordable + Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
            value: T,
        ) {
            let ours = encode(&value).unwrap();
            assert_eq!(ours, postcard::to_allocvec(&value).unwrap(), "{value:?}");
            assert_eq!(decode::<T>(&ours).unwrap(), value);
        }
        same(());
        same((7u64,));
        same((String::from("héllo"), vec![1u8, 2, 3]));
        same((Some(vec![0u8; 300]), None::<String>));
        same(vec![String::from("a"), String::from("b")]);
        same((Ok::<u32, String>(5), Err::<u32, String>("no".into())));
        same((u64::MAX, -3i32, 1.5f64, true, 'x'));
        same(vec![Some(vec![9u8; 200]); 3]);
    }

    /// A resource handle is its number in the instance's table, beside values serde writes.
    #[test]
    fn a_resource_is_recorded_as_its_handle() {
        use wasmtime::component::Resource;
        struct Descriptor;
        let value = (Resource::<Descriptor>::new_own(300), String::from("x"));
        let bytes = encode(&value).unwrap();
        assert_eq!(bytes, [0xac, 0x02, 1, b'x']);
        let (back, text) = decode::<(Resource<Descriptor>, String)>(&bytes).unwrap();
        assert_eq!((back.rep(), text.as_str()), (300, "x"));
    }

    #[test]
    fn hostile_input_is_an_error() {
        assert!(decode::<(Vec<u8>,)>(&[0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        assert!(decode::<(Option<u8>,)>(&[2]).is_err());
        assert!(decode::<(Vec<String>,)>(&[0xff, 0xff, 0x7f]).is_err());
        assert!(decode::<(u8,)>(&[1, 2]).is_err());
        assert!(decode::<(Vec<u8>,)>(&[0x80; 11]).is_err());
        // A list of empty tuples claiming 2^34 elements: refused, not looped over.
        assert!(decode::<(Vec<()>,)>(&[0x80, 0x80, 0x80, 0x80, 0x40]).is_err());
        assert!(decode::<(Vec<u64>,)>(&[3, 1, 2]).is_err());
    }
}
