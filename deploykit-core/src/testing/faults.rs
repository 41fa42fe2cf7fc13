//! Scripted faults: which call of which operation misbehaves, and how.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::{Error, Result};

/// How a scripted call misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Returns an error.
    Fail,
    /// Never returns (until a deadline cuts it off).
    Hang,
    /// Panics.
    Panic,
}

/// A script of faults keyed by operation name (e.g. `target.activate`) and call
/// number (from 1), plus a count of every call made.
#[derive(Debug, Default)]
pub struct Faults {
    script: Mutex<HashMap<(String, u32), Fault>>,
    always: Mutex<HashMap<String, Fault>>,
    calls: Mutex<HashMap<String, u32>>,
}

impl Faults {
    /// Makes call `call` of `op` misbehave.
    pub fn on_call(&self, op: &str, call: u32, fault: Fault) {
        self.script
            .lock()
            .unwrap()
            .insert((op.to_string(), call), fault);
    }

    /// Makes every call of `op` misbehave until cleared.
    pub fn always(&self, op: &str, fault: Fault) {
        self.always.lock().unwrap().insert(op.to_string(), fault);
    }

    /// Removes every scripted fault (call counts are kept).
    pub fn clear(&self) {
        self.script.lock().unwrap().clear();
        self.always.lock().unwrap().clear();
    }

    /// How many times `op` was called.
    pub fn calls(&self, op: &str) -> u32 {
        self.calls.lock().unwrap().get(op).copied().unwrap_or(0)
    }

    /// Counts a call of `op` and returns its scripted fault, if any.
    pub fn next(&self, op: &str) -> Option<Fault> {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            let n = calls.entry(op.to_string()).or_insert(0);
            *n += 1;
            *n
        };
        if let Some(f) = self.always.lock().unwrap().get(op) {
            return Some(*f);
        }
        self.script
            .lock()
            .unwrap()
            .get(&(op.to_string(), n))
            .copied()
    }

    /// Counts a call of `op` and acts out its fault: `Err` for `Fail`, never returns
    /// for `Hang`, panics for `Panic`.
    pub async fn enter(&self, op: &str) -> Result<()> {
        match self.next(op) {
            None => Ok(()),
            Some(Fault::Fail) => Err(Error::part(
                op,
                "memory",
                format!("scripted failure of {op}"),
            )),
            Some(Fault::Hang) => std::future::pending().await,
            Some(Fault::Panic) => panic!("scripted panic in {op}"),
        }
    }
}
