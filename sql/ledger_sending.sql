-- The ledger's statements on the sender's path: one patient's due documents, then `sending`
-- before each POST and the answer after it (backfill/ledger/store.py: pending_documents,
-- begin_attempt, end_attempt). They run once or twice per submission set, so they are written
-- out once here and executed as prepared text: built as SQLAlchemy expressions on every call,
-- they cost the sender more CPU than SQLite's own work did.
--
-- Each statement follows a "-- name: NAME" line; :name marks a parameter. SQL that SQLite and
-- PostgreSQL both run, except {for_update}: "FOR UPDATE" on PostgreSQL (the rows stay locked until
-- the transaction ends), nothing on SQLite, whose BEGIN IMMEDIATE already keeps other writers out.
-- {due} stands for the condition named "due". The state names come in as parameters (:selected,
-- :sending…), from backfill.ledger.states.

-- name: due
-- A document due now, over bf_document d LEFT JOIN bf_patient p: selected; sending (left so by a
-- crash: resent with the same uniqueId and bytes); retry_wait whose time has come; deferred past
-- its patient's recheck. The one definition: the patients to take (Ledger.pending_patients) and
-- each one's documents (below) both use it.
(d.state IN (:selected, :sending)
 OR (d.state = :retry_wait AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= :now))
 OR (d.state = :deferred AND (p.recheck_at IS NULL OR p.recheck_at <= :now)))

-- name: pending_documents
-- One patient's documents due now, in the charge of run :run_id (NULL: of any run).
SELECT d.document_id, d.set_id, d.version, d.ipp, d.state, d.kind, d.replaces_unique_id,
       d.unique_id, d.hash, d.size, d.attempts
FROM bf_document d
LEFT OUTER JOIN bf_patient p ON p.ipp = d.ipp
WHERE d.ipp = :ipp
  AND (CAST(:run_id AS BIGINT) IS NULL OR d.run_id = :run_id)
  AND {due}
ORDER BY d.document_id

-- name: lock_documents
-- The documents of a set about to be POSTed, as they are now.
SELECT document_id, ipp, state, unique_id, hash, size, run_id
FROM bf_document
WHERE document_id IN :ids
{for_update}

-- name: insert_post
INSERT INTO bf_attempt (run_id, action, ipp, submission_set_id, documents, started_at)
VALUES (:run_id, 'post', :ipp, :submission_set_id, :documents, :now)
RETURNING attempt_id

-- name: insert_post_document
INSERT INTO bf_attempt_document (attempt_id, document_id, unique_id, hash, size, from_state)
VALUES (:attempt_id, :document_id, :unique_id, :hash, :size, :from_state)

-- name: mark_sending
UPDATE bf_document
SET state = :sending,
    unique_id = :unique_id,
    hash = :hash,
    size = :size,
    replaces_unique_id = COALESCE(:replaces_unique_id, replaces_unique_id),
    attempts = attempts + 1,
    submission_set_id = :submission_set_id,
    attempt_id = :attempt_id,
    next_attempt_at = NULL,
    updated_at = :now,
    run_id = :run_id
WHERE document_id = :document_id

-- name: lock_attempt
-- An attempt awaiting its answer: one row per document of its set, with the document as it is
-- now (another attempt may have taken it up since: then it keeps its state).
SELECT a.ended_at, a.ipp, ad.document_id, d.state, d.attempt_id
FROM bf_attempt a
JOIN bf_attempt_document ad ON ad.attempt_id = a.attempt_id
JOIN bf_document d ON d.document_id = ad.document_id
WHERE a.attempt_id = :attempt_id
{for_update}

-- name: record_answer
UPDATE bf_document
SET state = :state,
    last_code = :code,
    last_text = :text,
    next_attempt_at = :next_attempt_at,
    acked_at = :acked_at,
    updated_at = :now
WHERE document_id = :document_id

-- name: record_answer_document
UPDATE bf_attempt_document
SET result = :result, code = :code, text = :text
WHERE attempt_id = :attempt_id AND document_id = :document_id

-- name: close_attempt
UPDATE bf_attempt
SET outcome = :outcome, http_status = :http_status, latency = :latency, detail = :detail,
    ended_at = :now
WHERE attempt_id = :attempt_id

-- name: patient_has_dmp
-- The DMP took this patient's documents: whatever was noted before, it has an open DMP.
UPDATE bf_patient
SET dmp_status = :open, recheck_at = NULL, updated_at = :now
WHERE ipp = :ipp AND dmp_status = :no_dmp
