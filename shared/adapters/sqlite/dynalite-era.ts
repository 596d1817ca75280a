/**
 * A data dir from the dynalite era (its database in `db/`, LevelDB files) is refused, not read:
 * this version keeps its database in `lanyard.db` (SQLite) and does not migrate the old one
 * (docs/decisions.md, README "Data"). The message says what to do: move the old folder aside,
 * which keeps it intact for whoever needs its audit, and start again; the signing key and the
 * vault under the same dir are kept and used as they are.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';

export const DYNALITE_DB_DIR = 'db';

export class DynaliteEraDataDirError extends Error {
  readonly oldDatabase: string;

  constructor(dataDir: string, oldDatabase: string) {
    super(
      `${dataDir} holds a database from an older Lanyard (dynalite, in ${oldDatabase}); this version keeps its database in ` +
        `${join(dataDir, 'lanyard.db')} (SQLite) and does not read the old one. Move it aside and start again ` +
        `(the signing key and the secrets in ${dataDir} are kept; policy, API keys and audit start empty, the old ones stay in the moved folder): ` +
        `mv '${oldDatabase}' '${oldDatabase}.dynalite-backup'`,
    );
    this.name = 'DynaliteEraDataDirError';
    this.oldDatabase = oldDatabase;
  }
}

/** Throws {@link DynaliteEraDataDirError} when `dataDir` still has the dynalite era's `db/` folder. */
export async function refuseDynaliteEra(dataDir: string): Promise<void> {
  const oldDatabase = join(dataDir, DYNALITE_DB_DIR);
  const found = await stat(oldDatabase).then(
    (stats) => stats.isDirectory(),
    () => false,
  );
  if (found) throw new DynaliteEraDataDirError(dataDir, oldDatabase);
}
