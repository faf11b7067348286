//! Fresh PostgreSQL and MariaDB databases for tests (filled in by the store work).
