-- The faces an in-memory index proposed (crates/store/src/face_indexes.rs),
-- with their exact cosine similarity and their subject's name, as committed
-- now: a face deleted since the index learned of it is simply not returned.
-- $1 query vector, $2 the proposed face ids.
SELECT f.id AS face_id, f.subject_id, (1 - (f.embedding <=> $1))::real AS similarity, s.name AS subject
FROM faces f
JOIN subjects s ON s.id = f.subject_id
WHERE f.id = ANY($2)
