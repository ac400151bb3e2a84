//! Where the remote tier keeps its bytes: Redis (`redis://host:port/db`, the `redis` crate)
//! or an S3-compatible bucket (`s3://bucket/prefix`, through opendal, with the usual AWS
//! env vars: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, and
//! `AWS_ENDPOINT_URL` for non-AWS servers). Every call is bounded by `TIMEOUT`.

use std::sync::Mutex;
use std::time::Duration;

/// Bound on every remote connect, read and write.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// Requests a backend without batches has in flight at once for `get_many`/`put_many`.
const IN_FLIGHT: usize = 16;

/// A key-value store of byte strings.
pub trait Backend: Send + Sync {
    /// The value of `key` if it is at most `limit` bytes; a longer one is never read whole.
    fn get(&self, key: &str, limit: u64) -> Result<Fetched, String>;
    /// True when `key` has a value.
    fn exists(&self, key: &str) -> Result<bool, String>;
    /// Sets `key` to `value`.
    fn put(&self, key: &str, value: &[u8]) -> Result<(), String>;
    /// The values of `keys` (each as `get` reads it), in order, in as few round trips as
    /// the backend allows: by default `IN_FLIGHT` requests at a time.
    fn get_many(&self, keys: &[String], limit: u64) -> Result<Vec<Fetched>, String> {
        in_parallel(keys, |key| self.get(key, limit))
    }
    /// Sets each key to its value, in as few round trips as the backend allows.
    fn put_many(&self, items: &[(String, Vec<u8>)]) -> Result<(), String> {
        in_parallel(items, |(key, value)| self.put(key, value)).map(drop)
    }
}

/// `call` on each of `items`, `IN_FLIGHT` at a time; the results in order, or the first
/// error.
fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    call: impl Fn(&T) -> Result<R, String> + Sync,
) -> Result<Vec<R>, String> {
    let chunk = items.len().div_ceil(IN_FLIGHT).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().map(&call).collect::<Result<Vec<R>, _>>()))
            .collect();
        let mut all = Vec::with_capacity(items.len());
        for worker in workers {
            let part = worker
                .join()
                .map_err(|_| "a remote request panicked".to_string())?;
            all.extend(part?);
        }
        Ok(all)
    })
}

/// What a bounded read found.
#[derive(Debug, PartialEq, Eq)]
pub enum Fetched {
    /// No value (or an empty one: nothing zccache stores remotely is empty).
    Absent,
    /// A value longer than the limit.
    TooLarge,
    /// The value.
    Value(Vec<u8>),
}

impl Fetched {
    fn of(value: Vec<u8>, limit: u64) -> Fetched {
        match value.len() as u64 {
            0 => Fetched::Absent,
            n if n > limit => Fetched::TooLarge,
            _ => Fetched::Value(value),
        }
    }
}

/// The backend `url` names; keys are prefixed with `namespace`.
pub fn open(url: &str, namespace: &str) -> Result<Box<dyn Backend>, String> {
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        return Ok(Box::new(Redis {
            client,
            namespace: namespace.to_string(),
            idle: Mutex::new(Vec::new()),
        }));
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        return S3::open(rest, namespace).map(|s3| Box::new(s3) as Box<dyn Backend>);
    }
    Err("only redis:// and s3:// URLs are supported".to_string())
}

/// Redis: `<namespace>:<key>`, connections pooled (one per thread using it at once).
struct Redis {
    client: redis::Client,
    namespace: String,
    idle: Mutex<Vec<redis::Connection>>,
}

impl Redis {
    /// Runs `command` on a pooled connection (a failed one is dropped, not returned).
    fn with<T>(
        &self,
        command: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, String> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut con = match pooled {
            Some(con) => con,
            None => {
                let con = self
                    .client
                    .get_connection_with_timeout(TIMEOUT)
                    .map_err(|e| e.to_string())?;
                con.set_read_timeout(Some(TIMEOUT))
                    .map_err(|e| e.to_string())?;
                con.set_write_timeout(Some(TIMEOUT))
                    .map_err(|e| e.to_string())?;
                con
            }
        };
        let answer = command(&mut con).map_err(|e| e.to_string())?;
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(con);
        Ok(answer)
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.namespace)
    }
}

impl Backend for Redis {
    fn get(&self, key: &str, limit: u64) -> Result<Fetched, String> {
        // GETRANGE reads at most limit + 1 bytes: enough to tell a value is too large.
        let value: Vec<u8> = self.with(|con| {
            redis::cmd("GETRANGE")
                .arg(self.key(key))
                .arg(0)
                .arg(limit)
                .query(con)
        })?;
        Ok(Fetched::of(value, limit))
    }

    fn exists(&self, key: &str) -> Result<bool, String> {
        self.with(|con| redis::cmd("EXISTS").arg(self.key(key)).query(con))
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), String> {
        self.with(|con| redis::cmd("SET").arg(self.key(key)).arg(value).query(con))
    }

    /// One pipeline of `GETRANGE`s: one round trip, each value bounded as `get`'s.
    fn get_many(&self, keys: &[String], limit: u64) -> Result<Vec<Fetched>, String> {
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("GETRANGE").arg(self.key(key)).arg(0).arg(limit);
        }
        let values: Vec<Vec<u8>> = self.with(|con| pipe.query(con))?;
        Ok(values.into_iter().map(|v| Fetched::of(v, limit)).collect())
    }

    /// One pipeline of `SET`s: one round trip.
    fn put_many(&self, items: &[(String, Vec<u8>)]) -> Result<(), String> {
        let mut pipe = redis::pipe();
        for (key, value) in items {
            pipe.cmd("SET").arg(self.key(key)).arg(value).ignore();
        }
        self.with(|con| pipe.query::<()>(con))
    }
}

/// An S3-compatible bucket: objects `<prefix>/<namespace>/<key>`.
struct S3 {
    operator: opendal::blocking::Operator,
    namespace: String,
    /// opendal runs on tokio; the blocking operator drives this runtime.
    _runtime: tokio::runtime::Runtime,
}

impl S3 {
    /// `bucket[/prefix]` with the region, endpoint and credentials of the AWS env vars.
    fn open(bucket_and_prefix: &str, namespace: &str) -> Result<S3, String> {
        let (bucket, prefix) = bucket_and_prefix
            .split_once('/')
            .unwrap_or((bucket_and_prefix, ""));
        if bucket.is_empty() {
            return Err("s3:// needs a bucket".to_string());
        }
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let region = env("AWS_REGION")
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_string());
        let mut builder = opendal::services::S3::default()
            .bucket(bucket)
            .root(&format!("/{prefix}"))
            .region(&region);
        if let Some(endpoint) = env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL")) {
            builder = builder.endpoint(&endpoint);
        }
        // The HTTP transport (reqwest) is installed process-wide, once.
        opendal::install_default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("zccache-s3")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let _entered = runtime.enter();
        let operator = opendal::Operator::new(builder)
            .map_err(|e| e.to_string())?
            .layer(opendal::layers::TimeoutLayer::new().with_timeout(TIMEOUT));
        let operator = opendal::blocking::Operator::new(operator).map_err(|e| e.to_string())?;
        Ok(S3 {
            operator,
            namespace: namespace.to_string(),
            _runtime: runtime,
        })
    }

    fn path(&self, key: &str) -> String {
        format!("{}/{key}", self.namespace)
    }
}

impl Backend for S3 {
    fn get(&self, key: &str, limit: u64) -> Result<Fetched, String> {
        // The size first (a ranged read of a shorter object is an error to opendal).
        let size = match self.operator.stat(&self.path(key)) {
            Ok(meta) => meta.content_length(),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(Fetched::Absent),
            Err(e) => return Err(e.to_string()),
        };
        if size > limit {
            return Ok(Fetched::TooLarge);
        }
        match self.operator.read(&self.path(key)) {
            Ok(buffer) => Ok(Fetched::of(buffer.to_vec(), limit)),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(Fetched::Absent),
            Err(e) => Err(e.to_string()),
        }
    }

    fn exists(&self, key: &str) -> Result<bool, String> {
        self.operator
            .exists(&self.path(key))
            .map_err(|e| e.to_string())
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), String> {
        self.operator
            .write(&self.path(key), value.to_vec())
            .map(drop)
            .map_err(|e| e.to_string())
    }
}
