-- Demo schema for the docker-compose stack.
-- Mounted into /docker-entrypoint-initdb.d, so the postgres image runs it once,
-- on first start with an empty data volume, in POSTGRES_DB (app) as POSTGRES_USER.
-- To re-run it: docker-compose down -v (drops the pgdata volume).

-- Per-user rows: bucketed by owner, user_id = 42 -> bucket user:42
-- (Synchro__Tables__0__OwnerColumn=user_id in docker-compose.yml).
CREATE TABLE todos (
    id         bigserial PRIMARY KEY,
    user_id    bigint,
    title      text NOT NULL,
    done       boolean NOT NULL DEFAULT false,
    deleted_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Shared rows: no owner column configured, so every row goes to the global bucket.
CREATE TABLE announcements (
    id         bigserial PRIMARY KEY,
    body       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The own database of the sample read-model service (todo-read-model in docker-compose.yml); it
-- creates its tables itself. psql runs this file statement by statement, so CREATE DATABASE may be here.
CREATE DATABASE read_model;
