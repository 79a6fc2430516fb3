//! Fault and power-loss tests of the store's flows, on simulated disks:
//! redb over [`super::redb::sim::SimDisk`] and blobs in [`SimBlobs`], both
//! of which keep apart what was written and what was made durable, and
//! fail on demand with EIO.
//!
//! `SimBlobs` follows the [`BlobStore`] contract as [`super::local`] keeps
//! it with its syncs: a finished blob (file and `tmp/` entry synced) and a
//! removal survive a power cut; bytes not finished, a discard and a publish
//! rename (never synced) do not.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use bytes::Bytes;

use super::Store;
use super::blob::{BlobSink, BlobSource, BlobStore};
use super::model::*;
use super::redb::RedbMeta;
use super::redb::sim::{SimDisk, eio, fails};
use crate::checksum::Algorithm;
use crate::error::{Code, S3Result};

#[derive(Debug, Clone, Default)]
struct SimFile {
    data: Vec<u8>,
    published: bool,
}

#[derive(Debug, Default)]
struct Files {
    now: HashMap<BlobId, SimFile>,
    durable: HashMap<BlobId, SimFile>,
}

type Hook = Box<dyn FnMut() + Send>;

#[derive(Default)]
pub struct SimBlobs {
    files: Mutex<Files>,
    pub fail_writes: AtomicU64,
    pub fail_syncs: AtomicU64,
    pub fail_renames: AtomicU64,
    pub fail_removes: AtomicU64,
    /// Called before each durable step (a finish, a removal) takes effect.
    before_sync: Mutex<Option<Hook>>,
}

impl std::fmt::Debug for SimBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimBlobs").finish_non_exhaustive()
    }
}

impl SimBlobs {
    pub fn new() -> Arc<SimBlobs> {
        Arc::new(SimBlobs::default())
    }

    /// What a power cut now would leave.
    pub fn after_power_cut(&self) -> Arc<SimBlobs> {
        let durable = self.files.lock().unwrap().durable.clone();
        Arc::new(SimBlobs {
            files: Mutex::new(Files {
                now: durable.clone(),
                durable,
            }),
            ..SimBlobs::default()
        })
    }

    fn synced(&self) {
        if let Some(hook) = self.before_sync.lock().unwrap().as_mut() {
            hook();
        }
    }

    /// Every blob file there is, published or not.
    pub fn ids(&self) -> Vec<BlobId> {
        let mut ids: Vec<BlobId> = self.files.lock().unwrap().now.keys().copied().collect();
        ids.sort();
        ids
    }
}

struct SimSink {
    id: BlobId,
    blobs: Arc<SimBlobs>,
}

impl BlobSink for SimSink {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if fails(&self.blobs.fail_writes) {
            return Err(eio());
        }
        let mut files = self.blobs.files.lock().unwrap();
        let file = files.now.get_mut(&self.id).ok_or_else(eio)?;
        file.data.extend_from_slice(data);
        Ok(())
    }

    fn finish(self: Box<Self>) -> io::Result<()> {
        self.blobs.synced();
        if fails(&self.blobs.fail_syncs) {
            return Err(eio());
        }
        let mut files = self.blobs.files.lock().unwrap();
        let file = files.now.get(&self.id).cloned().ok_or_else(eio)?;
        files.durable.insert(self.id, file);
        Ok(())
    }
}

/// The store interface needs `&self`; sinks need the store itself.
#[derive(Debug)]
pub struct SimBlobsHandle(pub Arc<SimBlobs>);

impl BlobStore for SimBlobsHandle {
    fn create(&self, id: BlobId) -> io::Result<Box<dyn BlobSink>> {
        if fails(&self.0.fail_writes) {
            return Err(eio());
        }
        self.0
            .files
            .lock()
            .unwrap()
            .now
            .insert(id, SimFile::default());
        Ok(Box::new(SimSink {
            id,
            blobs: Arc::clone(&self.0),
        }))
    }

    fn discard(&self, id: BlobId) {
        self.0.files.lock().unwrap().now.remove(&id);
    }

    fn publish(&self, id: BlobId) -> io::Result<()> {
        if fails(&self.0.fail_renames) {
            return Err(eio());
        }
        let mut files = self.0.files.lock().unwrap();
        files.now.get_mut(&id).ok_or_else(eio)?.published = true;
        Ok(())
    }

    fn open(&self, id: BlobId) -> io::Result<Box<dyn BlobSource>> {
        let files = self.0.files.lock().unwrap();
        let file = files.now.get(&id).ok_or(io::ErrorKind::NotFound)?;
        Ok(Box::new(io::Cursor::new(file.data.clone())))
    }

    fn remove(&self, ids: &[BlobId]) -> io::Result<Vec<BlobId>> {
        self.0.synced();
        if fails(&self.0.fail_removes) {
            return Err(eio());
        }
        let mut files = self.0.files.lock().unwrap();
        for id in ids {
            files.now.remove(id);
            files.durable.remove(id);
        }
        Ok(ids.to_vec())
    }

    fn unpublished(&self) -> io::Result<Vec<BlobId>> {
        let files = self.0.files.lock().unwrap();
        Ok(files
            .now
            .iter()
            .filter(|(_, f)| !f.published)
            .map(|(id, _)| *id)
            .collect())
    }

    fn free_bytes(&self) -> io::Result<u64> {
        Ok(u64::MAX)
    }
}

/// A store on simulated disks, recovered as at start-up.
async fn open_store(disk: &Arc<SimDisk>, blobs: &Arc<SimBlobs>) -> Arc<Store> {
    let d = Arc::clone(disk);
    let meta = RedbMeta::open_with(
        Box::new(move || {
            // As RedbMeta::open treats its file.
            if super::redb::never_created(&d.head()) {
                d.wipe();
            }
            redb::Database::builder()
                .create_with_backend(d.backend())
                .map_err(|e| e.to_string())
        }),
        0,
        Box::new(|m| panic!("{m}")),
    )
    .unwrap();
    let store = Store {
        meta: Arc::new(meta),
        blobs: Arc::new(SimBlobsHandle(Arc::clone(blobs))),
        grace_ms: 0,
        floor: Default::default(),
    };
    store.recover().await.unwrap();
    Arc::new(store)
}

fn body(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn receive(store: &Store, data: &[u8], inline: bool) -> S3Result<super::write::Received> {
    let mut writer = store.writer(Algorithm::Crc32, inline);
    writer.write(Bytes::copy_from_slice(data)).await?;
    writer.finish(|_| Ok(())).await
}

async fn put(store: &Store, key: &str, data: &[u8]) -> S3Result<ObjectHead> {
    let received = receive(store, data, true).await?;
    store
        .put_object(
            ("b", key),
            received,
            (ObjectMeta::default(), Vec::new(), Acl::Private),
            WriteCondition::None,
        )
        .await
}

fn upload_record() -> UploadRecord {
    UploadRecord {
        initiated_ms: crate::time::now_ms(),
        owner: "o".into(),
        meta: ObjectMeta::default(),
        checksum: None,
        tags: Vec::new(),
        acl: Acl::Private,
        max_size: None,
        token: None,
        granted: None,
    }
}

/// A multipart upload of `parts`, completed.
async fn multipart(store: &Store, key: &str, parts: &[Vec<u8>]) -> S3Result<ObjectHead> {
    let id = store.meta.create_upload("b", key, upload_record()).await?;
    let mut completed = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        let n = i as u32 + 1;
        let received = receive(store, data, false).await?;
        let part = store.put_part(("b", key, &id), n, received).await?;
        completed.push(CompletedPart {
            part_number: n,
            etag: hex(&part.md5),
            checksum: None,
        });
    }
    let completion = Completion {
        parts: completed,
        ..Completion::default()
    };
    store
        .meta
        .complete_upload("b", key, &id, completion, WriteCondition::None)
        .await
}

/// The whole object, or `None` when there is none.
async fn read(store: &Arc<Store>, key: &str) -> Option<Vec<u8>> {
    let (head, inline) = match store.meta.read_object("b", key).await {
        Ok(found) => found,
        Err(e) if e.code == Code::NoSuchKey => return None,
        Err(e) => panic!("reading {key}: {e:?}"),
    };
    let named = ("b", key, &head);
    let mut rx = store.stream(named, inline, (0, head.size), Instant::now());
    let mut out = Vec::new();
    while let Some(piece) = rx.recv().await {
        out.extend_from_slice(&piece.unwrap_or_else(|e| panic!("{key}: {e}")));
    }
    assert_eq!(out.len() as u64, head.size, "{key}");
    Some(out)
}

/// Every blob the metadata refers to.
async fn referenced(store: &Store) -> Vec<BlobId> {
    let mut ids = Vec::new();
    let listed = store
        .meta
        .list_objects(
            "b",
            ListQuery {
                max: 100_000,
                ..ListQuery::default()
            },
        )
        .await;
    let page = match listed {
        Ok(page) => page,
        // The cut came before the bucket was durable.
        Err(e) if e.code == Code::NoSuchBucket => return ids,
        Err(e) => panic!("{e:?}"),
    };
    for (_, head) in page.objects {
        match head.body {
            Body::Inline => {}
            Body::Blob(s) => ids.push(s.blob),
            Body::Parts { manifest, count } => {
                for (_, s) in store.meta.segments(manifest, 0, count).await.unwrap() {
                    ids.push(s.blob);
                }
            }
        }
    }
    let uploads = store
        .meta
        .list_uploads(
            "b",
            ListQuery {
                max: 100_000,
                ..ListQuery::default()
            },
            None,
        )
        .await
        .unwrap();
    for (_, id, _) in uploads.uploads {
        let (parts, _) = store.meta.parts(&id, 0, 10_000).await.unwrap();
        ids.extend(parts.into_iter().map(|(_, p)| p.blob));
    }
    ids.sort();
    ids.dedup();
    ids
}

#[tokio::test]
async fn blob_write_and_sync_errors_fail_the_request_and_store_nothing() {
    for fault in ["write", "sync"] {
        let (disk, blobs) = (SimDisk::new(), SimBlobs::new());
        let store = open_store(&disk, &blobs).await;
        store
            .meta
            .create_bucket("b", "o", Acl::Private)
            .await
            .unwrap();
        let old = body(1, 40_000);
        put(&store, "k", &old).await.unwrap();
        let files = blobs.ids();
        let budget = match fault {
            "write" => &blobs.fail_writes,
            _ => &blobs.fail_syncs,
        };
        budget.store(1, Ordering::SeqCst);
        let e = put(&store, "k", &body(2, 40_000)).await.unwrap_err();
        assert_eq!(e.code, Code::InternalError, "{fault}");
        budget.store(1, Ordering::SeqCst);
        let e = multipart(&store, "m", &[body(3, 30_000)])
            .await
            .unwrap_err();
        assert_eq!(e.code, Code::InternalError, "{fault}: the part fails too");
        assert_eq!(
            read(&store, "k").await.as_deref(),
            Some(&old[..]),
            "{fault}"
        );
        // The failed bodies' files are gone (discards run in the
        // background).
        let start = Instant::now();
        while blobs.ids() != files {
            assert!(
                start.elapsed().as_secs() < 5,
                "{fault}: leaked {:?}",
                blobs.ids()
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // And the next write works.
        let new = body(4, 40_000);
        put(&store, "k", &new).await.unwrap();
        assert_eq!(read(&store, "k").await, Some(new));
    }
}

#[tokio::test]
async fn a_failed_publish_keeps_the_acknowledged_blob_readable_and_recovery_moves_it() {
    let (disk, blobs) = (SimDisk::new(), SimBlobs::new());
    let store = open_store(&disk, &blobs).await;
    store
        .meta
        .create_bucket("b", "o", Acl::Private)
        .await
        .unwrap();
    blobs.fail_renames.store(1, Ordering::SeqCst);
    let data = body(5, 50_000);
    put(&store, "k", &data).await.unwrap();
    assert_eq!(read(&store, "k").await.as_deref(), Some(&data[..]));
    assert_eq!(
        SimBlobsHandle(Arc::clone(&blobs))
            .unpublished()
            .unwrap()
            .len(),
        1
    );
    drop(store);
    let store = open_store(&disk, &blobs).await;
    assert!(
        SimBlobsHandle(Arc::clone(&blobs))
            .unpublished()
            .unwrap()
            .is_empty()
    );
    assert_eq!(read(&store, "k").await, Some(data));
}

#[tokio::test]
async fn a_failed_unlink_leaves_the_garbage_for_the_next_pass() {
    let (disk, blobs) = (SimDisk::new(), SimBlobs::new());
    let store = open_store(&disk, &blobs).await;
    store
        .meta
        .create_bucket("b", "o", Acl::Private)
        .await
        .unwrap();
    put(&store, "k", &body(6, 30_000)).await.unwrap();
    store
        .meta
        .delete_objects("b", vec!["k".into()])
        .await
        .unwrap();
    blobs.fail_removes.store(1, Ordering::SeqCst);
    assert!(store.collect_garbage().await.is_err());
    assert_eq!(store.meta.stats().await.unwrap().garbage_blobs, 1);
    assert_eq!(blobs.ids().len(), 1);
    assert_eq!(store.collect_garbage().await.unwrap().0, 1);
    assert_eq!(store.meta.stats().await.unwrap().garbage_blobs, 0);
    assert!(blobs.ids().is_empty());
}

/// What a power cut at one sync point leaves, and what the workload had
/// acknowledged by then.
struct Cut {
    disk: Arc<SimDisk>,
    blobs: Arc<SimBlobs>,
    acked: HashMap<String, Option<Vec<u8>>>,
    in_flight: Option<(String, Option<Vec<u8>>)>,
}

#[derive(Default)]
struct Recorder {
    syncs: u64,
    cut_at: u64,
    cut: Option<Cut>,
    acked: HashMap<String, Option<Vec<u8>>>,
    in_flight: Option<(String, Option<Vec<u8>>)>,
}

/// Counts sync points across both disks and, at `cut_at`, records what a
/// power cut would leave.
fn install_hooks(disk: &Arc<SimDisk>, blobs: &Arc<SimBlobs>, recorder: &Arc<Mutex<Recorder>>) {
    let (wd, wb) = (Arc::downgrade(disk), Arc::downgrade(blobs));
    let make = |rec: Weak<Mutex<Recorder>>, wd: Weak<SimDisk>, wb: Weak<SimBlobs>| {
        move || {
            let (Some(rec), Some(d), Some(b)) = (rec.upgrade(), wd.upgrade(), wb.upgrade()) else {
                return;
            };
            let mut rec = rec.lock().unwrap();
            rec.syncs += 1;
            if rec.syncs == rec.cut_at {
                rec.cut = Some(Cut {
                    disk: d.after_power_cut(),
                    blobs: b.after_power_cut(),
                    acked: rec.acked.clone(),
                    in_flight: rec.in_flight.clone(),
                });
            }
        }
    };
    let on_disk = make(Arc::downgrade(recorder), wd.clone(), wb.clone());
    *disk.before_sync.lock().unwrap() = Some(Box::new(move |_| on_disk()));
    *blobs.before_sync.lock().unwrap() = Some(Box::new(make(Arc::downgrade(recorder), wd, wb)));
}

/// Puts (inline and blob), overwrites, multipart uploads (one left
/// incomplete), copies, deletes and collection, one at a time, recording
/// each acknowledgement.
async fn workload(store: &Arc<Store>, rec: &Arc<Mutex<Recorder>>) {
    let set = |key: &str, value: Option<Vec<u8>>, done: bool| {
        let mut r = rec.lock().unwrap();
        if done {
            r.in_flight = None;
            r.acked.insert(key.to_owned(), value);
        } else {
            r.in_flight = Some((key.to_owned(), value));
        }
    };
    store
        .meta
        .create_bucket("b", "o", Acl::Private)
        .await
        .unwrap();
    let steps: Vec<(&str, &str, usize)> = vec![
        ("put", "small", 300),
        ("put", "big", 40_000),
        ("mpu", "multi", 3),
        ("put", "big", 25_000),
        ("copy", "multi", 0),
        ("delete", "small", 0),
        ("gc", "", 0),
        ("put", "small", 18_000),
        ("mpu", "big", 2),
        ("delete", "multi", 0),
        ("pending", "open", 2),
        ("gc", "", 0),
        ("put", "multi", 100),
        ("delete", "copy", 0),
        ("gc", "", 0),
    ];
    for (i, (op, key, n)) in steps.into_iter().enumerate() {
        let seed = i as u64 + 10;
        match op {
            "put" => {
                let data = body(seed, n);
                set(key, Some(data.clone()), false);
                put(store, key, &data).await.unwrap();
                set(key, Some(data), true);
            }
            "mpu" => {
                let parts: Vec<Vec<u8>> =
                    (0..n).map(|p| body(seed * 10 + p as u64, 20_000)).collect();
                let whole = parts.concat();
                set(key, Some(whole.clone()), false);
                multipart(store, key, &parts).await.unwrap();
                set(key, Some(whole), true);
            }
            "copy" => {
                let source = rec.lock().unwrap().acked.get(key).cloned().flatten();
                set("copy", source.clone(), false);
                store
                    .meta
                    .copy_object(
                        ("b", key),
                        ("b", "copy"),
                        CopyChanges::default(),
                        SourceConditions::default(),
                    )
                    .await
                    .unwrap();
                set("copy", source, true);
            }
            "delete" => {
                set(key, None, false);
                store
                    .meta
                    .delete_objects("b", vec![key.to_owned()])
                    .await
                    .unwrap();
                set(key, None, true);
            }
            "pending" => {
                let id = store
                    .meta
                    .create_upload("b", key, upload_record())
                    .await
                    .unwrap();
                for p in 1..=n as u32 {
                    let received = receive(store, &body(seed + p as u64, 20_000), false)
                        .await
                        .unwrap();
                    store.put_part(("b", key, &id), p, received).await.unwrap();
                }
            }
            "gc" => while store.collect_garbage().await.unwrap().1 {},
            _ => unreachable!(),
        }
    }
}

/// Checks a store brought back after a cut: every acknowledged write reads
/// back exact (the write in flight may have landed or not), every record's
/// blobs are there, and once the collector has run, no blob file is left
/// that nothing refers to.
async fn check_after_cut(cut: Cut, point: u64) {
    let store = open_store(&cut.disk, &cut.blobs).await;
    let mut keys: Vec<&String> = cut.acked.keys().collect();
    if let Some((k, _)) = &cut.in_flight {
        keys.push(k);
    }
    for key in keys {
        let got = read(&store, key).await;
        let acked = cut.acked.get(key).cloned().flatten();
        let flying = cut
            .in_flight
            .as_ref()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone());
        assert!(
            got == acked || flying.is_some_and(|v| v == got),
            "cut at sync {point}: {key} reads {:?} bytes, acknowledged {:?}",
            got.as_ref().map(Vec::len),
            acked.as_ref().map(Vec::len)
        );
    }
    // Parts of incomplete uploads are readable too.
    let live = referenced(&store).await;
    for id in &live {
        assert!(
            store.blobs.open(*id).is_ok(),
            "cut at sync {point}: a record names missing blob {}",
            id_hex(*id)
        );
    }
    while store.collect_garbage().await.unwrap().1 {}
    assert_eq!(
        cut.blobs.ids(),
        live,
        "cut at sync {point}: orphans (or lost blobs) after recovery"
    );
}

/// A power cut at every sync point of a workload, each in a run of its
/// own: unsynced writes to the metadata file and to blob files are lost,
/// unsynced renames undone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_cut_at_every_sync_point_loses_no_acknowledged_write() {
    // A dry run counts the sync points.
    let total = {
        let (disk, blobs) = (SimDisk::new(), SimBlobs::new());
        let rec = Arc::new(Mutex::new(Recorder::default()));
        install_hooks(&disk, &blobs, &rec);
        let store = open_store(&disk, &blobs).await;
        let start = rec.lock().unwrap().syncs;
        workload(&store, &rec).await;
        let syncs = rec.lock().unwrap().syncs;
        assert!(syncs - start > 20, "the workload syncs: {syncs}");
        syncs
    };
    for point in 1..=total + 1 {
        let (disk, blobs) = (SimDisk::new(), SimBlobs::new());
        let rec = Arc::new(Mutex::new(Recorder {
            cut_at: point,
            ..Recorder::default()
        }));
        install_hooks(&disk, &blobs, &rec);
        let store = open_store(&disk, &blobs).await;
        workload(&store, &rec).await;
        drop(store);
        let (cut, acked) = {
            let mut rec = rec.lock().unwrap();
            (rec.cut.take(), rec.acked.clone())
        };
        let cut = cut.unwrap_or_else(|| Cut {
            // Past the last sync: the cut comes after everything.
            disk: disk.after_power_cut(),
            blobs: blobs.after_power_cut(),
            acked,
            in_flight: None,
        });
        check_after_cut(cut, point).await;
    }
}
