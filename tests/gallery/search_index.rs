//! Recognize's in-memory search of large collections (`crates/face-index`,
//! `crates/store/src/face_indexes.rs`) against real PostgreSQL: it answers
//! what exact search answers, and follows every change to the gallery
//! (faces added, subjects and collections deleted, a pruned change log, a
//! collection deleted and made again under the same name).

use facerec_core::{CollectionName, SubjectName};
use facerec_store::{SearchHit, SearchSettings, Store};
use facerec_testkit::TestDatabase;
use sqlx::PgPool;
use uuid::Uuid;

const DIM: usize = 128;
const EMBEDDER: &str = "sface_2021dec";

/// Collections over 10 faces go through the in-memory index.
fn in_memory() -> SearchSettings {
    SearchSettings { exact_max_faces: 10, in_memory: true, ..SearchSettings::default() }
}

fn exact() -> SearchSettings {
    SearchSettings { exact_max_faces: i64::MAX, ..SearchSettings::default() }
}

/// A small deterministic generator (xorshift64*), normal by Box-Muller.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn unit(&mut self) -> Vec<f32> {
        let v: Vec<f32> = (0..DIM)
            .map(|_| {
                let (u, w) = (self.uniform().max(1e-12), self.uniform());
                ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * w).cos()) as f32
            })
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect()
    }

    /// A face of the person whose centre is `centre`: cosine about 0.6 with it.
    fn face_of(&mut self, centre: &[f32]) -> Vec<f32> {
        let noise = self.unit();
        centre.iter().zip(noise).map(|(c, n)| 0.6f32.sqrt() * c + 0.4f32.sqrt() * n).collect()
    }
}

/// Adds faces in one statement (one change of the collection), creating the
/// collection and subjects as needed; returns the faces' ids.
async fn add_faces(db: &PgPool, collection: &str, faces: &[(&str, Vec<f32>)]) -> Vec<Uuid> {
    sqlx::query("INSERT INTO collections (name, embedder) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(collection)
        .bind(EMBEDDER)
        .execute(db)
        .await
        .unwrap();
    let names: Vec<String> = faces.iter().map(|(n, _)| n.to_string()).collect();
    sqlx::query(
        "INSERT INTO subjects (id, collection, name) SELECT gen_random_uuid(), $1, n FROM unnest($2::text[]) n \
         ON CONFLICT DO NOTHING",
    )
    .bind(collection)
    .bind(&names)
    .execute(db)
    .await
    .unwrap();
    let ids: Vec<Uuid> = faces.iter().map(|_| Uuid::now_v7()).collect();
    let vectors: Vec<String> = faces
        .iter()
        .map(|(_, v)| format!("[{}]", v.iter().map(f32::to_string).collect::<Vec<_>>().join(",")))
        .collect();
    sqlx::query(
        "INSERT INTO faces (id, subject_id, collection, detector, embedder, embedding, bbox, detection_score) \
         SELECT t.id, s.id, $2, 'yunet_2023mar', $3, t.e::vector, '{}'::jsonb, 0.9 \
         FROM unnest($1::uuid[], $4::text[], $5::text[]) AS t(id, n, e) \
         JOIN subjects s ON s.collection = $2 AND s.name = t.n",
    )
    .bind(&ids)
    .bind(collection)
    .bind(EMBEDDER)
    .bind(&names)
    .bind(&vectors)
    .execute(db)
    .await
    .unwrap();
    ids
}

async fn search(store: &Store, collection: &str, probe: &[f32], settings: SearchSettings) -> Vec<SearchHit> {
    let collection = CollectionName::parse(collection).unwrap();
    store.search_subjects(&collection, EMBEDDER, probe, 5, settings).await.unwrap()
}

#[tokio::test]
async fn the_in_memory_search_agrees_with_exact_search_and_follows_every_change() {
    let test = TestDatabase::create().await.unwrap();
    let (store, db) = (&test.store, &test.db);
    let mut rng = Rng(0x5EED);
    // 300 people with 5 faces each, added in three statements.
    let centres: Vec<Vec<f32>> = (0..300).map(|_| rng.unit()).collect();
    let names: Vec<String> = (0..300).map(|i| format!("person-{i:03}")).collect();
    for part in 0..3 {
        let faces: Vec<(&str, Vec<f32>)> = (part * 100..(part + 1) * 100)
            .flat_map(|p| (0..5).map(move |_| p))
            .map(|p| (names[p].as_str(), rng.face_of(&centres[p])))
            .collect();
        add_faces(db, "big", &faces).await;
    }

    // The same best match as exact search, and nearly the same top 5.
    let probes: Vec<(usize, Vec<f32>)> = (0..40).map(|i| (i * 7, rng.face_of(&centres[i * 7]))).collect();
    let mut shared = 0;
    for (person, probe) in &probes {
        let fast = search(store, "big", probe, in_memory()).await;
        let truth = search(store, "big", probe, exact()).await;
        assert_eq!(fast[0], truth[0], "best match of a probe of {}", names[*person]);
        assert_eq!(fast[0].subject, names[*person]);
        assert!(fast.windows(2).all(|w| w[0].similarity >= w[1].similarity));
        shared += fast.iter().filter(|h| truth.iter().any(|t| t.subject == h.subject)).count();
    }
    assert!(shared >= 40 * 5 * 9 / 10, "{shared} of the 200 top-5 subjects shared with exact search");

    // A deleted subject is never found again, and the next best takes its place.
    let (person, probe) = &probes[0];
    let subject = SubjectName::parse(&names[*person]).unwrap();
    let big = CollectionName::parse("big").unwrap();
    store.delete_subject(&big, &subject, None).await.unwrap().expect("subject existed");
    let fast = search(store, "big", probe, in_memory()).await;
    assert!(fast.iter().all(|h| h.subject != names[*person]), "{fast:?}");
    assert_eq!(fast[0], search(store, "big", probe, exact()).await[0]);

    // A face added later is found (the index catches up from the change log).
    let newcomer = rng.unit();
    let added = add_faces(db, "big", &[("newcomer", newcomer.clone())]).await;
    let fast = search(store, "big", &newcomer, in_memory()).await;
    assert_eq!((fast[0].face_id, fast[0].subject.as_str()), (added[0], "newcomer"));
    assert!(fast[0].similarity > 0.999, "{}", fast[0].similarity);

    // With the log pruned, the index reloads the collection instead.
    sqlx::query("DELETE FROM face_changes").execute(db).await.unwrap();
    let late = rng.unit();
    let added = add_faces(db, "big", &[("late", late.clone())]).await;
    assert_eq!(search(store, "big", &late, in_memory()).await[0].face_id, added[0]);
    assert_eq!(search(store, "big", &newcomer, in_memory()).await[0].subject, "newcomer");

    // Pruning keeps each collection's latest entry.
    add_faces(db, "big", &[("later", rng.unit())]).await;
    assert_eq!(test.count("face_changes").await, 2);
    assert_eq!(store.prune_face_changes(std::time::Duration::ZERO).await.unwrap(), 1);
    let latest: i64 = sqlx::query_scalar("SELECT version FROM face_changes").fetch_one(db).await.unwrap();
    let version: i64 =
        sqlx::query_scalar("SELECT face_version FROM collections WHERE name = 'big'").fetch_one(db).await.unwrap();
    assert_eq!(latest, version);

    // The collection deleted and made again (between two searches, as by
    // another process): none of the old faces come back.
    store.delete_collection(&big, None).await.unwrap().expect("collection existed");
    let strangers: Vec<(String, Vec<f32>)> = (0..20).map(|i| (format!("stranger-{i}"), rng.unit())).collect();
    let faces: Vec<(&str, Vec<f32>)> = strangers.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
    add_faces(db, "big", &faces).await;
    let fast = search(store, "big", &newcomer, in_memory()).await;
    assert_eq!(fast.len(), 5);
    assert!(fast.iter().all(|h| h.subject.starts_with("stranger-")), "{fast:?}");
    assert_eq!(fast[0], search(store, "big", &newcomer, exact()).await[0]);
    assert_eq!(search(store, "big", &strangers[3].1, in_memory()).await[0].subject, "stranger-3");
    store.delete_collection(&big, None).await.unwrap().expect("collection existed");
    assert!(search(store, "big", &strangers[3].1, in_memory()).await.is_empty());

    test.drop().await.unwrap();
}

/// The HNSW index is opt-in (migration 15): a fresh database has none, so a
/// register pays nothing for it, and the check a worker makes at start sees
/// it once the documented statement has built it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hnsw_index_is_built_only_on_request() {
    let test = TestDatabase::create().await.unwrap();
    assert!(!test.store.hnsw_index_ready().await.unwrap());
    sqlx::query(
        "CREATE INDEX CONCURRENTLY faces_embedding_hnsw_idx ON faces \
         USING hnsw (embedding vector_cosine_ops) WITH (m = 32, ef_construction = 128)",
    )
    .execute(&test.db)
    .await
    .unwrap();
    assert!(test.store.hnsw_index_ready().await.unwrap());
    test.drop().await.unwrap();
}
