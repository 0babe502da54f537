// `WHERE column IN (...)` over a list of any length: SQLite binds at most 32,766 parameters, and a
// confirmed case brings thousands of temp IDs, so the list goes a few hundred values a query.
import type Database from 'better-sqlite3';

const VALUES_PER_QUERY = 500;

/** The rows of `select` (a SELECT … FROM … without WHERE) whose `column` is one of `values`. */
export function* rowsWhereIn(db: Database.Database, select: string, column: string, values: readonly unknown[]): Generator<unknown> {
  for (let i = 0; i < values.length; i += VALUES_PER_QUERY) {
    const some = values.slice(i, i + VALUES_PER_QUERY);
    yield* db.prepare(`${select} WHERE ${column} IN (${some.map(() => '?').join(',')})`).iterate(...some);
  }
}
