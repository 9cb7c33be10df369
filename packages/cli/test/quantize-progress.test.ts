import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { formatDuration, progressBar, progressLine } from "@qforge/cli";

function fakeStream(isTTY: boolean): { isTTY: boolean; columns: number; writes: string[]; write(s: string): boolean } {
  const writes: string[] = [];
  return { isTTY, columns: 100, writes, write: (s: string) => { writes.push(s); return true; } };
}

describe("progress bar", () => {
  it("on a TTY redraws one line with done/total, elapsed and ETA, then ends it with a newline", () => {
    const s = fakeStream(true);
    let t = 0;
    const bar = progressBar(s, 4, { label: "calibrating", now: () => t, intervalMs: 100 });
    t = 1000;
    bar.update(1);
    t = 1050; // within the redraw interval: not drawn
    bar.update(2);
    t = 3000;
    bar.update(3);
    t = 4000;
    bar.update(4); // the last step always draws
    expect(bar.finish()).toBe(4);
    expect(s.writes).toHaveLength(4);
    expect(s.writes[0]).toMatch(/^\rcalibrating \[#+\.+\] 1\/4 {2}elapsed 1\.0s {2}ETA 3\.0s\x1b\[K$/);
    expect(s.writes[1]).toMatch(/ 3\/4 {2}elapsed 3\.0s {2}ETA 1\.0s/);
    expect(s.writes[2]).toMatch(/\[#+\] 4\/4 {2}elapsed 4\.0s {2}ETA 0\.0s/);
    expect(s.writes[3]).toBe("\n");
  });

  it("off a TTY writes nothing until one final line", () => {
    const s = fakeStream(false);
    let t = 0;
    const bar = progressBar(s, 3, { label: "calibrating", unit: "samples", now: () => t });
    for (let i = 1; i <= 3; i++) {
      t = i * 700;
      bar.update(i);
    }
    expect(s.writes).toEqual([]);
    bar.finish();
    expect(s.writes).toEqual(["calibrating: 3/3 samples in 2.1s\n"]);
  });

  it("abort ends a drawn TTY line and prints nothing off a TTY", () => {
    const tty = fakeStream(true);
    const a = progressBar(tty, 5, { now: () => 0, intervalMs: 0 });
    a.update(2);
    a.abort();
    expect(tty.writes.slice(1)).toEqual(["\n"]);
    const pipe = fakeStream(false);
    const b = progressBar(pipe, 5);
    b.update(2);
    b.abort();
    expect(pipe.writes).toEqual([]);
  });

  it("the bar is full exactly at the end and never longer than its width (fast-check)", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 10_000 }), fc.nat(), fc.integer({ min: 20, max: 300 }), (total, k, columns) => {
      const done = k % (total + 1);
      const line = progressLine("calibrating", done, total, 5, columns);
      const bar = /\[(#*)(\.*)\]/.exec(line)!;
      const width = bar[1]!.length + bar[2]!.length;
      expect(width).toBeGreaterThanOrEqual(10);
      expect(width).toBeLessThanOrEqual(40);
      expect(bar[2]!.length === 0).toBe(done === total);
      expect(line).toContain(` ${done}/${total} `);
    }));
  });

  it("formats durations", () => {
    expect(formatDuration(4.25)).toBe("4.3s");
    expect(formatDuration(187)).toBe("3m07s");
    expect(formatDuration(3720)).toBe("1h02m");
    expect(formatDuration(NaN)).toBe("?");
  });
});
