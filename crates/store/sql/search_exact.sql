-- Exact nearest faces of one (small) collection: `+ 0` keeps the planner off
-- the HNSW index, so it reads the collection's rows through the
-- (collection, embedder) b-tree and sorts them all. Same parameters and
-- columns as search_ann.sql.
SELECT f.id AS face_id, f.subject_id, (1 - (f.embedding <=> $1))::real AS similarity
FROM faces f
WHERE f.collection = $2 AND f.embedder = $3
ORDER BY (f.embedding <=> $1) + 0
LIMIT $4
