/** The group commit of decision records: batching, each caller's own outcome, the hook. */
import { describe, expect, it } from 'vitest';
import { GroupCommit, type CommitBatch } from '../../../../shared/adapters/sqlite/group-commit.ts';

describe('Class: GroupCommit', () => {
  it('takes everything queued while a commit is in flight into the next commit, and resolves each caller after its own', async () => {
    // Prepare: the first commit, while it runs, receives two more callers (as requests handled while a commit held the loop would).
    const commits: string[][] = [];
    const settled: string[] = [];
    const late: Promise<void>[] = [];
    const group: GroupCommit<string> = new GroupCommit<string>((items) => {
      commits.push([...items]);
      if (commits.length === 1) {
        late.push(group.add(['c']).then(() => void settled.push('c')));
        late.push(group.add(['d']).then(() => void settled.push('d')));
        // Still queued: the commit in flight does not take them.
        expect(group.pending).toBe(2);
      }
    });

    // Act
    await Promise.all([group.add(['a']).then(() => void settled.push('a')), group.add(['b']).then(() => void settled.push('b'))]);
    expect(commits).toStrictEqual([['a', 'b']]);
    await Promise.all(late);

    // Assess
    expect(commits).toStrictEqual([
      ['a', 'b'],
      ['c', 'd'],
    ]);
    expect(settled).toStrictEqual(['a', 'b', 'c', 'd']);
  });

  it('rejects only the caller whose records fail: the others of its batch are committed on their own', async () => {
    // Prepare
    const committed: string[][] = [];
    const batches: CommitBatch[] = [];
    const group = new GroupCommit<string>(
      (items) => {
        if (items.includes('bad')) throw new Error('the engine refused bad');
        committed.push([...items]);
      },
      (batch) => batches.push(batch),
    );

    // Act
    const outcomes = await Promise.allSettled([group.add(['a']), group.add(['bad', 'b2']), group.add(['c'])]);

    // Assess
    expect(outcomes.map((outcome) => outcome.status)).toStrictEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((outcomes[1] as PromiseRejectedResult).reason).toStrictEqual(new Error('the engine refused bad'));
    expect(committed).toStrictEqual([['a'], ['c']]);
    // The hook sees only commits that happened.
    expect(batches.map((batch) => batch.size)).toStrictEqual([1, 1]);
  });

  it('reports each commit to the hook with its size, and a hook that throws fails no caller', async () => {
    // Prepare
    const sizes: number[] = [];
    const group = new GroupCommit<number>(
      () => {},
      (batch) => {
        sizes.push(batch.size);
        throw new Error('metrics are down');
      },
    );

    // Act
    await Promise.all([group.add([1, 2, 3]), group.add([4])]);
    await group.add([5]);

    // Assess
    expect(sizes).toStrictEqual([4, 1]);
  });

  it('commits the queue at once on flush, and does nothing with an empty queue', async () => {
    // Prepare
    const commits: number[][] = [];
    const group = new GroupCommit<number>((items) => void commits.push([...items]));
    const pending = group.add([7]);

    // Act
    group.flush();
    group.flush();

    // Assess
    expect(commits).toStrictEqual([[7]]);
    await pending;
    expect(group.pending).toBe(0);
  });
});
