-- DS1.4 for one month, over the DPI contract (DESIGN §4, §10): the query `backfill indicator` runs,
-- written out for the establishment's BI team. It returns one row: the returning-patient stays of
-- the month and how they split; DS1.4 = counted / returning_patient_stays.
--
-- The programme's words (SUN-ES, bonus « reprise de l'historique du DPI »): « Parmi les patients
-- déjà venus, taux de séjours pour lesquels au moins un document datant d'un ancien séjour a fait
-- l'objet d'une alimentation au DMP, avec une INS qualifiée. »
--
-- Parameters (timestamps without time zone, like the DPI's own):
--   :month_start      first instant of the month, Paris wall-clock   e.g. 2026-11-01 00:00:00
--   :until_wall       end of the month (or now, month to date), Paris wall-clock
--                                                                    e.g. 2026-12-01 00:00:00
--   :until_utc        the same instant in UTC (acknowledgements)     e.g. 2026-11-30 23:00:00
--   :encounter_types  the stays that count, a list                   default ('IMP')
--   :eligible_kinds   the kinds a backfill would send (the rule's)   e.g. ('LDL','CRH','CRO','CR_CONSULT','CR_URG')
--
-- ds14_acked(document_id, acked_at UTC) holds what dmp-backfill's ledger says the DMP acknowledged.
-- The engine creates it as a TEMPORARY table on its DPI connection and fills it from the ledger; to
-- run this file by hand, create it the same way (empty: only the live feed counts):
--   CREATE TEMPORARY TABLE ds14_acked (document_id VARCHAR(64) PRIMARY KEY, acked_at TIMESTAMP NOT NULL);
--
-- Written in SQL that SQLite and PostgreSQL both run (a test checks this file against the engine).

WITH returning_stay AS (
    SELECT
        -- a qualified identity: RNIV status QUAL, not doubtful, not fictitious, with an INS
        CASE WHEN p.identity_status = 'QUAL'
              AND COALESCE(p.identity_doubtful, FALSE) = FALSE
              AND COALESCE(p.identity_fictitious, FALSE) = FALSE
              AND p.ins_matricule IS NOT NULL
              AND p.ins_oid IN ('1.2.250.1.213.1.4.8', '1.2.250.1.213.1.4.9',
                                '1.2.250.1.213.1.4.10', '1.2.250.1.213.1.4.11')
             THEN 1 ELSE 0 END AS qualified,
        -- at least one document of an earlier venue is in the DMP at the cut
        CASE WHEN EXISTS (
                 SELECT 1
                 FROM dpi_stay prev
                 JOIN dpi_document d ON d.stay_id = prev.stay_id
                 WHERE prev.ipp = s.ipp
                   AND prev.stay_id <> s.stay_id
                   AND prev.status NOT IN ('planned', 'cancelled')
                   AND prev.discharged_at IS NOT NULL
                   AND prev.discharged_at < s.admitted_at
                   AND d.ipp = s.ipp
                   AND (d.sent_live_at < :until_wall
                        OR EXISTS (SELECT 1 FROM ds14_acked a
                                   WHERE a.document_id = d.document_id
                                     AND a.acked_at < :until_utc)))
             THEN 1 ELSE 0 END AS sent,
        -- … or at least one a backfill could send (validated, of the rule's kinds)
        CASE WHEN EXISTS (
                 SELECT 1
                 FROM dpi_stay prev
                 JOIN dpi_document d ON d.stay_id = prev.stay_id
                 WHERE prev.ipp = s.ipp
                   AND prev.stay_id <> s.stay_id
                   AND prev.status NOT IN ('planned', 'cancelled')
                   AND prev.discharged_at IS NOT NULL
                   AND prev.discharged_at < s.admitted_at
                   AND d.ipp = s.ipp
                   AND d.status = 'validated'
                   AND d.kind IN :eligible_kinds)
             THEN 1 ELSE 0 END AS eligible
    FROM dpi_stay s
    LEFT JOIN dpi_patient p ON p.ipp = s.ipp
    WHERE s.encounter_type IN :encounter_types          -- séjours: hospitalisation, full or partial, HAD
      AND s.status NOT IN ('planned', 'cancelled')      -- a planned stay is not an admission yet
      AND s.admitted_at >= :month_start
      AND s.admitted_at < :until_wall
      AND EXISTS (                                      -- « patients déjà venus »: an earlier venue
          SELECT 1                                      -- of any type, discharged before
          FROM dpi_stay prev
          WHERE prev.ipp = s.ipp
            AND prev.stay_id <> s.stay_id
            AND prev.status NOT IN ('planned', 'cancelled')
            AND prev.discharged_at IS NOT NULL
            AND prev.discharged_at < s.admitted_at)
)
SELECT
    COUNT(*)                                                                     AS returning_patient_stays,
    COALESCE(SUM(CASE WHEN qualified = 0 THEN 1 ELSE 0 END), 0)                  AS identity_not_qualified,
    COALESCE(SUM(CASE WHEN qualified = 1 AND sent = 0 AND eligible = 0 THEN 1 ELSE 0 END), 0)
                                                                                 AS no_eligible_history,
    COALESCE(SUM(CASE WHEN qualified = 1 AND sent = 0 AND eligible = 1 THEN 1 ELSE 0 END), 0)
                                                                                 AS eligible_not_yet_sent,
    COALESCE(SUM(CASE WHEN qualified = 1 AND sent = 1 THEN 1 ELSE 0 END), 0)     AS counted
FROM returning_stay;
