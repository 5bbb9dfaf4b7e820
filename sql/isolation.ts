/**
 * The isolation every engine transaction states in its BEGIN. Claims, checkpoints and migrations read rows after waiting
 * for a lock, which READ COMMITTED reads as committed meanwhile; a transaction-wide snapshot (a database or role whose
 * `default_transaction_isolation` is repeatable read or serializable) does not, and the second of two instances starting
 * at once applied the migrations again, or failed to claim. Stated per transaction rather than as a startup parameter,
 * which PgBouncer refuses unless told to ignore it.
 */
export const READ_COMMITTED = "isolation level read committed";
