//! `libscore_client_jvm`: the Rust half of the jar (Java package
//! `score.client`), and only conversions: Java values to a
//! [`ClientConfig`], row blocks from direct `ByteBuffer`s (through
//! [`direct`]), scores into a `float[]`, errors into Java exceptions.
//!
//! The work itself is stream-client's bounded window ([`Session`]):
//! batching, the in-flight window, retries, failover and order. The Java
//! side (`java/score/client/Scoring.java`) drives it: it asks
//! [`Java_score_client_Native_turn`] what is needed, and either fills a
//! block of rows from Spark's iterator ([`Java_score_client_Native_feed`])
//! or takes the next rows' results. Rows are thus pulled only when the
//! window has room, and the client never calls back into the JVM. A row
//! Java cannot send is reported here ([`Java_score_client_Native_reject`]);
//! the [`ledger`] puts it back in its place among the scored rows, so Java
//! only pairs each result with the row's pass-through values, in order.
//!
//! Every JVM has one client per configuration ([`Client::shared`]), so the
//! task threads of an executor share one runtime, one connection pool, the
//! endpoints' health and the retry budget. A session is named to Java by a
//! number; closing it (or dropping it here) aborts its requests in flight.

mod direct;
mod ledger;
mod natives;

use std::collections::HashMap;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, MutexGuard};

use jni::errors::ErrorPolicy;
use jni::objects::JString;
use jni::strings::JNIString;
use jni::sys::jlong;
use jni::{Env, jni_str};
use stream_client::{ClientConfig, Session};

/// Why a native call failed; [`Throw`] turns it into a Java exception.
#[derive(Debug)]
enum Failure {
    /// Rows could not be scored (or the model not described): the server's
    /// sentence, or what gave up. `score.client.ScoreException`.
    Score(String),
    /// An argument is wrong. `IllegalArgumentException`.
    Invalid(String),
    /// The JNI call itself failed (an exception may be pending already).
    Jni(jni::errors::Error),
}

impl From<jni::errors::Error> for Failure {
    fn from(e: jni::errors::Error) -> Self {
        Failure::Jni(e)
    }
}

/// The error policy of every native method: a [`Failure`] or a panic
/// becomes a Java exception (unless one is pending already) and the method
/// returns its type's default, which Java never sees.
struct Throw;

impl Throw {
    fn throw(env: &mut Env<'_>, class: &'static jni::strings::JNIStr, message: String) {
        if !env.exception_check() {
            // If even this fails, the JVM has a pending error of its own.
            let _ = env.throw_new(class, JNIString::from(message));
        }
    }
}

impl<T: Default> ErrorPolicy<T, Failure> for Throw {
    type Captures<'unowned_env_local: 'native_method, 'native_method> = ();

    fn on_error<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _captures: &mut (),
        err: Failure,
    ) -> jni::errors::Result<T> {
        match err {
            Failure::Score(m) => Throw::throw(env, jni_str!("score/client/ScoreException"), m),
            Failure::Invalid(m) => {
                Throw::throw(env, jni_str!("java/lang/IllegalArgumentException"), m)
            }
            Failure::Jni(e) => Throw::throw(
                env,
                jni_str!("java/lang/IllegalStateException"),
                format!("the native scoring client's JNI call failed: {e}"),
            ),
        }
        Ok(T::default())
    }

    fn on_panic<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _captures: &mut (),
        payload: Box<dyn std::any::Any + Send + 'static>,
    ) -> jni::errors::Result<T> {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        // Leaked rather than dropped here: a payload's drop may panic too.
        std::mem::forget(payload);
        Throw::throw(
            env,
            jni_str!("java/lang/IllegalStateException"),
            format!("the native scoring client panicked (a bug): {what}"),
        );
        Ok(T::default())
    }
}

/// A Java string that may be null.
fn optional(env: &Env<'_>, s: &JString<'_>) -> Result<Option<String>, Failure> {
    if s.is_null() { Ok(None) } else { Ok(Some(s.try_to_string(env)?)) }
}

/// The validated configurations by number, and the number of each (equal
/// settings share one).
#[derive(Default)]
struct Configs {
    by_id: HashMap<jlong, ClientConfig>,
    ids: HashMap<ClientConfig, jlong>,
}

static CONFIGS: Mutex<Option<Configs>> = Mutex::new(None);

/// The number of `config`, registering it if new.
fn register(config: ClientConfig) -> jlong {
    let mut guard = CONFIGS.lock().unwrap_or_else(|e| e.into_inner());
    let configs = guard.get_or_insert_default();
    if let Some(&id) = configs.ids.get(&config) {
        return id;
    }
    let id = configs.by_id.len() as jlong + 1;
    configs.ids.insert(config.clone(), id);
    configs.by_id.insert(id, config);
    id
}

/// The configuration numbered `id`.
fn configured(id: jlong) -> Result<ClientConfig, Failure> {
    let guard = CONFIGS.lock().unwrap_or_else(|e| e.into_inner());
    guard
        .as_ref()
        .and_then(|c| c.by_id.get(&id).cloned())
        .ok_or_else(|| Failure::Invalid(format!("no configuration numbered {id}")))
}

/// A partition being scored: its session, once the first row to send
/// gives the width (`Native.begin`), and the ledger of its rows in input
/// order.
struct Open {
    /// The configuration the session is made from.
    config: ClientConfig,
    session: Option<Session>,
    /// Failed batches and rejected rows are reported (errors as a
    /// column), not thrown.
    keep_going: bool,
    /// The message of the last rows `turn` reported failed.
    last_error: Option<String>,
    ledger: ledger::Ledger,
    /// The input ended before any row was sent (no session needed).
    ended: bool,
    /// The session said every result has been returned.
    done: bool,
}

/// The open sessions by number.
static SESSIONS: Mutex<Option<HashMap<jlong, Arc<Mutex<Open>>>>> = Mutex::new(None);
static NEXT_SESSION: AtomicI64 = AtomicI64::new(1);

fn sessions() -> MutexGuard<'static, Option<HashMap<jlong, Arc<Mutex<Open>>>>> {
    SESSIONS.lock().unwrap_or_else(|e| e.into_inner())
}

fn session(id: jlong) -> Result<Arc<Mutex<Open>>, Failure> {
    sessions()
        .as_ref()
        .and_then(|s| s.get(&id).cloned())
        .ok_or_else(|| Failure::Invalid(format!("scoring session {id} is closed")))
}

fn lock(open: &Mutex<Open>) -> MutexGuard<'_, Open> {
    open.lock().unwrap_or_else(|e| e.into_inner())
}
