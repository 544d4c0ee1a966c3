-- The faces an in-memory index proposed (crates/store/src/face_indexes.rs),
-- with their exact cosine similarity, as this transaction sees them: a face
-- deleted since the index learned of it is simply not returned.
-- $1 query vector, $2 the proposed face ids. Same columns as search_ann.sql.
SELECT f.id AS face_id, f.subject_id, (1 - (f.embedding <=> $1))::real AS similarity
FROM faces f
WHERE f.id = ANY($2)
