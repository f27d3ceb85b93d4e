//! The dice actor (actors/dice) with its `loaded` feature on: from its fourth roll on it asks
//! for a number in 1..=5 instead of 1..=6. Replaying a dice chain against this component must
//! report a divergence at the fourth `random-range` call.

#[path = "../../dice/src/lib.rs"]
mod dice;
