-- The DPI contract (DESIGN §4): the five relations dmp-backfill reads, and nothing else.
--
-- A real establishment maps its DPI onto these names with views (see docs/mapping-a-dpi.md);
-- the synthetic DPI creates them as tables with this file. The engine never writes to them.
--
-- Portability: every type below is understood by SQLite, PostgreSQL, Oracle and SQL Server,
-- except the one binary column, written BLOB here. `connectors.dpi.contract.contract_ddl()`
-- swaps it for the dialect's name (PostgreSQL BYTEA, SQL Server VARBINARY(MAX)); do the same
-- if you run this file by hand.
--
-- Timestamps carry no time zone: they are Europe/Paris wall-clock time, as DPIs store them.
-- No foreign keys: views cannot carry them, and the engine gives a reason code to a row that
-- points at nothing instead of trusting referential integrity.
--
-- Columns marked OPTIONAL were added to the contract later: a view may leave them out, and the
-- engine then reads them as NULL for every row (it reflects the DPI before querying).

CREATE TABLE dpi_patient (
    ipp                     VARCHAR(64)  NOT NULL PRIMARY KEY,
    ins_matricule           VARCHAR(32),
    ins_oid                 VARCHAR(64),
    identity_status         VARCHAR(8)   NOT NULL,
    identity_doubtful       BOOLEAN      NOT NULL,
    identity_fictitious     BOOLEAN      NOT NULL,
    birth_family_name       VARCHAR(200),
    birth_given_names       VARCHAR(300),
    first_birth_given_name  VARCHAR(200),
    used_family_name        VARCHAR(200),
    used_given_name         VARCHAR(200),
    sex                     VARCHAR(1),
    birth_date              DATE,
    birth_place_code        VARCHAR(5),
    deceased                BOOLEAN      NOT NULL,
    death_date              DATE,
    -- The patient opposed feeding, as recorded locally. Once a DMP exists its feeding is
    -- automatic and cannot be opposed; an opposition to opening Mon espace santé means there
    -- is no DMP. The rule's `local_opposition` says whether this blocks (default) or whether
    -- the DMP answers. A request that one document not be sent is dpi_document.withheld.
    dmp_opposition          BOOLEAN      NOT NULL
);

-- Selection looks for an INS matricule held by two patients at every run: without an index the
-- database groups every patient to find them.
CREATE INDEX ix_dpi_patient_ins_matricule ON dpi_patient (ins_matricule);

CREATE TABLE dpi_unit (
    unit_code               VARCHAR(64)  NOT NULL PRIMARY KEY,
    name                    VARCHAR(200) NOT NULL,
    practice_setting_code   VARCHAR(64)  NOT NULL,
    computerized_since      DATE
);

CREATE TABLE dpi_author (
    author_id               VARCHAR(64)  NOT NULL PRIMARY KEY,
    rpps                    VARCHAR(11),
    adeli                   VARCHAR(9),
    family_name             VARCHAR(200) NOT NULL,
    given_name              VARCHAR(200) NOT NULL,
    specialty_code          VARCHAR(64),
    -- OPTIONAL. The establishment's own number for this professional (used without RPPS/ADELI).
    staff_number            VARCHAR(64)
);

CREATE TABLE dpi_stay (
    stay_id                 VARCHAR(64)  NOT NULL PRIMARY KEY,
    ipp                     VARCHAR(64)  NOT NULL,
    -- JDV_J142: IMP (hospitalisation, full or partial: a day case is IMP; HAD included),
    -- EMER, EXTERNE, SEANCE (dialysis, chemotherapy…); AMB is care outside the establishment.
    encounter_type          VARCHAR(16)  NOT NULL,
    admitted_at             TIMESTAMP    NOT NULL,
    discharged_at           TIMESTAMP,
    status                  VARCHAR(16)  NOT NULL,
    unit_code               VARCHAR(64),
    -- OPTIONAL. For an IMP stay: 'full' or 'partial' (day or night hospital); NULL: not said.
    hospitalisation         VARCHAR(16)
);

CREATE INDEX ix_dpi_stay_ipp ON dpi_stay (ipp);

CREATE TABLE dpi_document (
    document_id             VARCHAR(64)  NOT NULL PRIMARY KEY,
    set_id                  VARCHAR(64)  NOT NULL,
    version                 INTEGER      NOT NULL,
    ipp                     VARCHAR(64)  NOT NULL,
    stay_id                 VARCHAR(64),
    kind                    VARCHAR(16)  NOT NULL,
    title                   VARCHAR(500) NOT NULL,
    created_at              TIMESTAMP    NOT NULL,
    status                  VARCHAR(16)  NOT NULL,
    author_id               VARCHAR(64),
    legal_authenticator_id  VARCHAR(64),
    authenticated_at        TIMESTAMP,
    unit_code               VARCHAR(64),
    mime_type               VARCHAR(100),
    masked_ps               BOOLEAN      NOT NULL,
    invisible_patient       BOOLEAN      NOT NULL,
    invisible_legal_rep     BOOLEAN      NOT NULL,
    sent_live_at            TIMESTAMP,
    dmp_unique_id           VARCHAR(128),
    -- OPTIONAL. The patient asked that this document not be sent to the DMP (NULL: no).
    withheld                BOOLEAN,
    -- OPTIONAL. The author's role for this document (JDV_J47 code, e.g. DISPHYS), if recorded.
    author_function         VARCHAR(16),
    -- OPTIONAL. For an operative report (CRO): when the operation took place.
    operated_at             TIMESTAMP,
    -- The contents last: SQLite reaches a column stored after a large value only by walking that
    -- value's overflow pages, and selection reads the other columns of every row (a DPI view may
    -- order its columns as it likes; queries name them).
    content_uri             VARCHAR(1000),
    content                 BLOB
);

CREATE INDEX ix_dpi_document_ipp ON dpi_document (ipp);
CREATE INDEX ix_dpi_document_set ON dpi_document (set_id, version);
