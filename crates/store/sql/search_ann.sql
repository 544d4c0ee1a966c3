-- Nearest faces of one collection by cosine distance, through the HNSW index
-- (faces_embedding_hnsw_idx). Run inside a transaction that first sets
-- `hnsw.ef_search` and `hnsw.iterative_scan` (see crates/store/src/search.rs).
-- $1 query vector, $2 collection, $3 embedder, $4 how many faces.
-- Shared by the store and scripts/search_bench.py, so the benchmark measures
-- exactly what recognize runs.
SELECT f.id AS face_id, f.subject_id, (1 - (f.embedding <=> $1))::real AS similarity
FROM faces f
WHERE f.collection = $2 AND f.embedder = $3
ORDER BY f.embedding <=> $1
LIMIT $4
