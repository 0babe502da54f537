// A vitest reporter: at the end of a run, every skipped test with its reason, and one closing line
// "vitest: N passed, N failed, N skipped". Under CI=true a skip that skips.ts does not allow fails
// the run: a missing tool must show as a failure, not as fewer tests.
import type { Reporter, TestModule, TestSuite } from 'vitest/node';
import { allowedSkip } from './skips.js';

export default class SkipReport implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    const skipped: { name: string; reason: string | undefined }[] = [];
    for (const module of modules) {
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failed++;
        else if (state === 'skipped') {
          const titles: string[] = [];
          for (let parent: TestSuite | TestModule = test.parent; parent.type === 'suite'; parent = parent.parent) titles.unshift(parent.name);
          titles.push(test.name);
          skipped.push({ name: `${module.moduleId.replace(`${process.cwd()}/`, '')} > ${test.fullName}`, reason: allowedSkip(titles)?.reason });
        }
      }
    }
    const unexplained = skipped.filter((s) => s.reason === undefined);
    if (skipped.length > 0) {
      console.log(`\nSkipped tests (${skipped.length}):`);
      for (const s of skipped) console.log(`  ${s.name}\n    why: ${s.reason ?? 'NOT AN ALLOWED SKIP (test/harness/skips.ts lists those)'}`);
    }
    if (unexplained.length > 0 && process.env.CI === 'true') {
      console.log(`\n${unexplained.length} test(s) skipped without an allowed reason: under CI=true that fails the run`);
      process.exitCode = 1;
    }
    console.log(`\nvitest: ${passed} passed, ${failed} failed, ${skipped.length} skipped`);
  }
}
