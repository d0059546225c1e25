//! The native methods of `score.client.Native`, exported under their JNI
//! names. Exporting an unmangled symbol counts as `unsafe` code (two
//! libraries exporting one name would clash): allowed in this module only.
//! The names are unique to this library (`Java_score_client_Native_*`), and
//! each method's body is safe Rust run under [`Throw`]'s policy, so no
//! error or panic crosses into the JVM.
#![allow(unsafe_code)]

use jni::EnvUnowned;
use jni::objects::{
    JByteBuffer, JClass, JFloatArray, JIntArray, JLongArray, JObjectArray, JString,
};
use jni::sys::{jboolean, jint, jlong};
use score_protocol::media::BodyFormat;
use stream_client::{Client, ClientConfig, Input, Session, Turn};

use crate::ledger::{Ledger, Out};
use score_protocol::features::{Column, ColumnKind, FeatureColumns, find_features};

use crate::{
    Failure, NEXT_SESSION, Open, Throw, configured, direct, lock, register, session, sessions,
};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// `Native.configure(settings)`: a `Scorer`'s settings, names and values
/// alternating, parsed and checked by the core
/// (`stream_client::settings`; throws `IllegalArgumentException` with the
/// reason). Returns the number of the configuration, which `scoreColumns`
/// and `open` take. Equal settings get the same number, so a JVM holds one
/// entry per distinct `Scorer`.
#[unsafe(no_mangle)]
pub extern "system" fn Java_score_client_Native_configure<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    settings: JObjectArray<'l, JString<'l>>,
) -> jlong {
    env.with_env(|env| -> Result<jlong, Failure> {
        if settings.is_null() {
            return Err(Failure::Invalid("no settings given".into()));
        }
        let texts = strings(env, &settings)?;
        if texts.len() % 2 != 0 {
            return Err(Failure::Invalid("settings come as names and values, in pairs".into()));
        }
        let pairs = texts.chunks_exact(2).map(|p| (p[0].as_str(), p[1].as_str()));
        let c = ClientConfig::from_settings(pairs).map_err(|e| Failure::Invalid(e.to_string()))?;
        Ok(register(c))
    })
    .resolve::<Throw>()
}

/// `Native.setting(config, name)`: the value the core holds for a setting
/// (null when unset; a token reads `***`), to show what it made of the
/// settings it was given.
#[unsafe(no_mangle)]
pub extern "system" fn Java_score_client_Native_setting<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    config: jlong,
    name: JString<'l>,
) -> JString<'l> {
    env.with_env(|env| -> Result<JString<'l>, Failure> {
        let c = configured(config)?;
        let name = crate::optional(env, &name)?.unwrap_or_default();
        match c.setting(&name) {
            Some(value) => Ok(env.new_string(value)?),
            None => Ok(JString::default()),
        }
    })
    .resolve::<Throw>()
}

/// `Native.features(names, kinds, types, wanted)`: where a Spark schema's
/// features are, by the rules the whole client shares
/// (`score_protocol::features`): the schema's column names, what each
/// holds (`float`, `number`, `number_list`, `other_list`, `text`, `other`)
/// and its type as Spark writes it, and the columns asked for (none: found
/// by the rules). Returns `[layout, index...]`, layout 0 for numeric
/// columns, 1 for one array column, 2 for one text column; throws
/// `IllegalArgumentException` with the reason.
#[unsafe(no_mangle)]
pub extern "system" fn Java_score_client_Native_features<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    names: JObjectArray<'l, JString<'l>>,
    kinds: JObjectArray<'l, JString<'l>>,
    types: JObjectArray<'l, JString<'l>>,
    wanted: JObjectArray<'l, JString<'l>>,
) -> JIntArray<'l> {
    env.with_env(|env| -> Result<JIntArray<'l>, Failure> {
        let (names, kinds) = (strings(env, &names)?, strings(env, &kinds)?);
        let (types, wanted) = (strings(env, &types)?, strings(env, &wanted)?);
        let mut columns = Vec::with_capacity(names.len());
        for ((name, kind), type_name) in names.iter().zip(&kinds).zip(&types) {
            let kind = match kind.as_str() {
                "float" => ColumnKind::Float,
                "number" => ColumnKind::Number,
                "number_list" => ColumnKind::NumberList,
                "other_list" => ColumnKind::OtherList,
                "text" => ColumnKind::Text,
                _ => ColumnKind::Other,
            };
            columns.push(Column { name, kind, type_name });
        }
        let found = find_features(&columns, Some(&wanted), true)
            .map_err(|e| Failure::Invalid(e.to_string()))?;
        let (layout, indices) = match found {
            FeatureColumns::Columns(indices) => (0, indices),
            FeatureColumns::List(ix) => (1, vec![ix]),
            FeatureColumns::Text(ix) => (2, vec![ix]),
        };
        let mut out = vec![layout];
        for ix in indices {
            out.push(jint::try_from(ix).map_err(|_| Failure::Invalid("too many columns".into()))?);
        }
        let array = env.new_int_array(out.len())?;
        array.set_region(env, 0, &out)?;
        Ok(array)
    })
    .resolve::<Throw>()
}

/// A Java `String[]` without nulls.
fn strings(
    env: &mut jni::Env<'_>,
    array: &JObjectArray<'_, JString<'_>>,
) -> Result<Vec<String>, Failure> {
    if array.is_null() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for i in 0..array.len(env)? {
        let element = array.get_element(env, i)?;
        match crate::optional(env, &element)? {
            Some(s) => out.push(s),
            None => return Err(Failure::Invalid(format!("element {i} is null"))),
        }
    }
    Ok(out)
}

/// `Native.scoreColumns(config)`: scores per row of the chosen output, from
/// the first server whose `/models` answers.
#[unsafe(no_mangle)]
pub extern "system" fn Java_score_client_Native_scoreColumns<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    config: jlong,
) -> jint {
    env.with_env(|_env| -> Result<jint, Failure> {
        let c = configured(config)?;
        let doc = served_doc(&c)?;
        let k = doc.score_columns(c.output.as_deref()).map_err(Failure::Score)?;
        jint::try_from(k).map_err(|_| Failure::Score(format!("{k} scores per row is too many")))
    })
    .resolve::<Throw>()
}

/// `Native.open(config, keepGoing)`: starts scoring a partition; returns
/// its number. The session itself starts at `Native.begin`, once a row to
/// send gives the width; rows rejected before that are still reported in
/// their place.
#[unsafe(no_mangle)]
pub extern "system" fn Java_score_client_Native_open<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    config: jlong,
    keep_going: jboolean,
) -> jlong {
    env.with_env(|_env| -> Result<jlong, Failure> {
        stream_client::log_to_stderr("STREAM_CLIENT_LOG");
        let mut config = configured(config)?;
        config.keep_going = keep_going;
        let open = Open {
            config,
            session: None,
            keep_going,
            last_error: None,
            ledger: Ledger::default(),
            ended: false,
            done: false,
        };
        let id = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
        sessions().get_or_insert_default().insert(id, Arc::new(Mutex::new(open)));
        Ok(id)
    })
    .resolve::<Throw>()
}

/// `Native.begin(session, columns, scoreColumns)`: starts the session over
/// `columns` features per row, expecting `scoreColumns` scores per row.
#[unsafe(no_mangle)]
pub extern "system" fn Java_score_client_Native_begin<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    id: jlong,
    columns: jint,
    score_columns: jint,
) {
    env.with_env(|_env| -> Result<(), Failure> {
        let open = session(id)?;
        let mut open = lock(&open);
        let mut c = open.config.clone();
        c.columns = usize::try_from(columns).unwrap_or(0);
        c.score_columns = usize::try_from(score_columns).ok().filter(|&k| k > 0);
        let client = Client::shared(c).map_err(|e| Failure::Invalid(e.to_string()))?;
        open.session = Some(client.session());
        Ok(())
    })
    .resolve::<Throw>()
}

/// `Native.reject(session, before, why)`: the next input row cannot be
/// sent (`why`), after `before` rows of the block being filled. With
/// errors as a column it comes back in its place from `turn`; otherwise
/// this throws `ScoreException` naming the row.
#[unsafe(no_mangle)]
pub extern "system" fn Java_score_client_Native_reject<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    id: jlong,
    before: jint,
    why: JString<'l>,
) {
    env.with_env(|env| -> Result<(), Failure> {
        let why = why.try_to_string(env)?;
        let open = session(id)?;
        let mut open = lock(&open);
        let message = open.ledger.reject(u64::try_from(before).unwrap_or(0), &why);
        if open.keep_going { Ok(()) } else { Err(Failure::Score(message)) }
    })
    .resolve::<Throw>()
}

/// What `Native.turn` returns when the session needs a block of rows.
const FEED: jint = -1;

/// `Native.turn(session, out)`: what the partition needs next. `-1`: a
/// block of rows (`Native.feed`); `0`: every row has come back; `n > 0`:
/// the next `n` rows' scores are in `out` (row-major); `n < -1`: the next
/// `-n - 1` rows failed (errors as a column; rejected rows included) and
/// `Native.lastError` says why. Other failures throw `ScoreException`.
/// Blocks while waiting for the servers.
#[unsafe(no_mangle)]
pub extern "system" fn Java_score_client_Native_turn<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    id: jlong,
    out: JFloatArray<'l>,
) -> jint {
    env.with_env(|env| -> Result<jint, Failure> {
        let open = session(id)?;
        let mut open = lock(&open);
        let open = &mut *open;
        loop {
            match open.ledger.next() {
                Some(Out::Scores { values, rows: n }) => {
                    let room = out.len(env)?;
                    if values.len() > room {
                        return Err(Failure::Invalid(format!(
                            "the score array holds {room} floats, a batch has {}",
                            values.len()
                        )));
                    }
                    out.set_region(env, 0, &values)?;
                    return rows(n);
                }
                Some(Out::Failed { rows: n, message }) => {
                    open.last_error = Some(message);
                    return Ok(-rows(n)? - 1);
                }
                None => {}
            }
            let session = match &mut open.session {
                Some(session) if !open.done => session,
                _ if open.done || open.ended => return Ok(0),
                None => return Ok(FEED),
                Some(_) => unreachable!("matched above"),
            };
            match session.turn() {
                Turn::Feed => return Ok(FEED),
                Turn::Done => open.done = true,
                Turn::Result(Ok(scored)) => {
                    open.ledger.scored(scored.values, scored.columns, scored.rows);
                }
                Turn::Result(Err(e)) => match e.batch() {
                    Some((_, n)) if open.keep_going => open.ledger.failed(n, e.to_string()),
                    _ => return Err(Failure::Score(e.to_string())),
                },
            }
        }
    })
    .resolve::<Throw>()
}

fn rows(n: usize) -> Result<jint, Failure> {
    jint::try_from(n).map_err(|_| Failure::Invalid(format!("{n} rows in one batch")))
}

/// `Native.lastError(session)`: why the batch `turn` reported failed.
#[unsafe(no_mangle)]
pub extern "system" fn Java_score_client_Native_lastError<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    id: jlong,
) -> JString<'l> {
    env.with_env(|env| -> Result<JString<'l>, Failure> {
        let open = session(id)?;
        let message = lock(&open).last_error.take().unwrap_or_default();
        Ok(env.new_string(message)?)
    })
    .resolve::<Throw>()
}

/// `Native.feed(session, block, rows, columns)`: the next `rows` rows of
/// `columns` float32 each, row-major at the start of the direct `block`,
/// copied into request bodies before it returns; `rows == 0`: the input
/// ended.
#[unsafe(no_mangle)]
pub extern "system" fn Java_score_client_Native_feed<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    id: jlong,
    block: JByteBuffer<'l>,
    rows: jint,
    columns: jint,
) {
    env.with_env(|env| -> Result<(), Failure> {
        let open = session(id)?;
        let mut open = lock(&open);
        if rows <= 0 {
            match &mut open.session {
                Some(session) => session.feed(None),
                None => open.ended = true,
            }
            return Ok(());
        }
        let floats = usize::try_from(rows)
            .ok()
            .zip(usize::try_from(columns).ok())
            .and_then(|(r, c)| r.checked_mul(c))
            .ok_or_else(|| Failure::Invalid(format!("{rows} rows of {columns} columns")))?;
        let values = direct::floats(env, &block, floats).map_err(Failure::Invalid)?;
        started(&mut open)?.feed(Some(values));
        open.ledger.sent(floats / columns.max(1) as usize);
        Ok(())
    })
    .resolve::<Throw>()
}

/// `Native.feedTexts(session, block, rows, bytes, column)`: the next `rows`
/// texts of the string column `column`, in Arrow's utf8 layout at the start
/// of the direct `block` (`rows + 1` int32 offsets, then `bytes` bytes of
/// UTF-8), sent by name as Arrow bodies (an embedding model's `text`),
/// copied before it returns. The input's end is `Native.feed` with 0 rows.
#[unsafe(no_mangle)]
pub extern "system" fn Java_score_client_Native_feedTexts<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    id: jlong,
    block: JByteBuffer<'l>,
    rows: jint,
    bytes: jint,
    column: JString<'l>,
) {
    env.with_env(|env| -> Result<(), Failure> {
        let open = session(id)?;
        let mut open = lock(&open);
        let (Ok(rows), Ok(bytes)) = (usize::try_from(rows), usize::try_from(bytes)) else {
            return Err(Failure::Invalid(format!("{rows} texts of {bytes} bytes")));
        };
        let column = column.try_to_string(env)?;
        let (offsets, values) =
            direct::texts(env, &block, rows, bytes).map_err(Failure::Invalid)?;
        let config = started(&mut open)?.config().clone();
        let bodies = stream_client::arrow::typed::text_bodies(
            &column,
            offsets,
            values,
            config.batch_rows,
            config.batch_bytes,
        )
        .map_err(Failure::Invalid)?;
        let session = started(&mut open)?;
        for (rows, body) in bodies {
            session.feed_input(Some(Input::Body { rows, body, format: BodyFormat::Arrow }));
        }
        open.ledger.sent(rows);
        Ok(())
    })
    .resolve::<Throw>()
}

/// The partition's session, which `Native.begin` started.
fn started(open: &mut Open) -> Result<&mut Session, Failure> {
    open.session.as_mut().ok_or_else(|| Failure::Invalid("rows fed before Native.begin".into()))
}

/// `Native.close(session)`: ends a session; its requests still in flight
/// are aborted. Closing twice is harmless.
#[unsafe(no_mangle)]
pub extern "system" fn Java_score_client_Native_close<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    id: jlong,
) {
    env.with_env(|_env| -> Result<(), Failure> {
        let removed = sessions().as_mut().and_then(|s| s.remove(&id));
        // Dropped outside the registry's lock: aborting takes a moment.
        drop(removed);
        Ok(())
    })
    .resolve::<Throw>()
}

/// `Native.stats()`: this JVM's client counters summed over its clients:
/// rows sent, rows scored, requests, retries, failed batches, bytes sent,
/// endpoint ejections.
#[unsafe(no_mangle)]
pub extern "system" fn Java_score_client_Native_stats<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
) -> JLongArray<'l> {
    env.with_env(|env| -> Result<JLongArray<'l>, Failure> {
        let s = Client::shared_stats();
        let values = [
            s.rows_sent,
            s.rows_scored,
            s.requests,
            s.total_retries(),
            s.failed_batches,
            s.bytes_sent,
            s.ejections,
        ]
        .map(|v| v as jlong);
        let array = env.new_long_array(values.len())?;
        array.set_region(env, 0, &values)?;
        Ok(array)
    })
    .resolve::<Throw>()
}

/// `Native.servedVersion(config)`: the version of the configured model
/// served now, from the first server whose `/models` answers.
#[unsafe(no_mangle)]
pub extern "system" fn Java_score_client_Native_servedVersion<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    config: jlong,
) -> JString<'l> {
    env.with_env(|env| -> Result<JString<'l>, Failure> {
        Ok(env.new_string(served_doc(&configured(config)?)?.version)?)
    })
    .resolve::<Throw>()
}

/// The configured model's description, from the first server whose
/// `/models` answers.
fn served_doc(c: &ClientConfig) -> Result<score_protocol::ModelDoc, Failure> {
    stream_client::fetch_model_any(&c.urls, c.model.as_deref(), c.token.as_ref())
        .map_err(|e| Failure::Score(e.to_string()))
}

/// `Native.pinned()`: the model version this JVM's clients' answers came
/// from, and each endpoint's adaptive limit, as lines: the version (empty
/// before the first answer), then `LIMIT URL` per endpoint.
#[unsafe(no_mangle)]
pub extern "system" fn Java_score_client_Native_pinned<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
) -> JString<'l> {
    env.with_env(|env| -> Result<JString<'l>, Failure> {
        let s = Client::shared_stats();
        let mut lines = vec![s.model_version.unwrap_or_default()];
        lines.extend(s.limits.iter().map(|(url, limit)| format!("{limit} {url}")));
        Ok(env.new_string(lines.join("\n"))?)
    })
    .resolve::<Throw>()
}

/// `Native.defaultBatchRows()`: the rows per request when the `Scorer`
/// does not set them (`ClientConfig::default`).
#[unsafe(no_mangle)]
pub extern "system" fn Java_score_client_Native_defaultBatchRows<'l>(
    _env: EnvUnowned<'l>,
    _class: JClass<'l>,
) -> jint {
    jint::try_from(ClientConfig::default().batch_rows).unwrap_or(jint::MAX)
}
