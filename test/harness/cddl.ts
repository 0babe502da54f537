// Checks values against docs/protocol.cddl. The CDDL is parsed by the `cddl` package (RFC 8610
// parser); this walks its syntax tree over the subset the spec uses: maps, groups, arrays with
// occurrences, choices, literals, ranges, .size and .regexp. No validator for RFC 8610 is
// published on npm or in Debian, so the walk is ours; its own test feeds it wrong values.
import { parse } from 'cddl';
import type { Typed } from './cbor-typed.js';

// The parser's tree, as far as it is used here.
type Ref = { Type: 'group'; Value: string; Unwrapped?: boolean };
type InlineMap = { Type: 'group'; Name: string; Properties: Property[] };
type InlineArray = { Type: 'array'; Values: Property[] };
type Literal = { Type: 'literal'; Value: string | number | boolean };
type Range = { Type: 'range'; Value: { Inclusive: boolean; Min: Literal; Max: Literal } };
type Controlled = { Type: string; Operator: { Type: 'size' | 'regexp' | string; Value: Literal | Range } };
type TypeExpr = string | Ref | InlineMap | InlineArray | Literal | Range | Controlled;
interface Property {
  HasCut: boolean;
  Occurrence: { n: number; m: number | null };
  Name: string;
  Type: TypeExpr | TypeExpr[];
}
type Rule =
  | { Type: 'group'; Name: string; Properties: Property[] }
  | { Type: 'variable'; Name: string; PropertyType: TypeExpr[] }
  | { Type: 'array'; Name: string; Values: Property[] };

const choices = (t: TypeExpr | TypeExpr[]): TypeExpr[] => (Array.isArray(t) ? t : [t]);
const isRef = (t: TypeExpr): t is Ref => typeof t === 'object' && t.Type === 'group' && 'Value' in t;
const isInlineMap = (t: TypeExpr): t is InlineMap => typeof t === 'object' && t.Type === 'group' && 'Properties' in t;

function show(v: Typed): string {
  switch (v.t) {
    case 'uint':
    case 'nint':
      return `${v.t} ${v.v}`;
    case 'tstr':
      return JSON.stringify(v.v.length > 40 ? v.v.slice(0, 40) + '…' : v.v);
    case 'bstr':
      return `bstr(${v.v.length})`;
    case 'array':
      return `array(${v.v.length})`;
    case 'map':
      return `map(${v.v.length})`;
    default:
      return `${v.t} ${String(v.v)}`;
  }
}

export class CddlSchema {
  private readonly rules = new Map<string, Rule>();

  constructor(path: string) {
    for (const rule of parse(path) as unknown as Rule[]) this.rules.set(rule.Name, rule);
  }

  get ruleNames(): string[] {
    return [...this.rules.keys()];
  }

  /** The problems of `value` against `ruleName`; an empty list when it conforms. */
  validate(ruleName: string, value: Typed): string[] {
    return this.ref(ruleName, value, ruleName);
  }

  private rule(name: string): Rule {
    const r = this.rules.get(name);
    if (!r) throw new Error(`the CDDL has no rule "${name}"`);
    return r;
  }

  private ref(name: string, v: Typed, path: string): string[] {
    const r = this.rule(name);
    if (r.Type === 'group') return this.map(r.Properties, v, path);
    if (r.Type === 'array') return this.array(r.Values, v, path);
    return this.oneOf(r.PropertyType, v, path);
  }

  private oneOf(options: TypeExpr[], v: Typed, path: string): string[] {
    const failures: string[][] = [];
    for (const t of options) {
      const errs = this.type(t, v, path);
      if (errs.length === 0) return [];
      failures.push(errs);
    }
    if (failures.length === 1) return failures[0];
    // the closest alternative says most: the one that got furthest (fewest errors, deepest path)
    failures.sort((a, b) => a.length - b.length || b[0].length - a[0].length);
    return failures[0];
  }

  private type(t: TypeExpr, v: Typed, path: string): string[] {
    if (typeof t === 'string') return this.native(t, v, path);
    if (isRef(t)) return this.ref(t.Value, v, path);
    if (isInlineMap(t)) return this.map(t.Properties, v, path);
    switch (t.Type) {
      case 'array':
        return this.array((t as InlineArray).Values, v, path);
      case 'literal': {
        const lit = (t as Literal).Value;
        const ok =
          typeof lit === 'number' ? (v.t === 'uint' || v.t === 'nint') && v.v === BigInt(lit)
          : typeof lit === 'boolean' ? v.t === 'bool' && v.v === lit
          : v.t === 'tstr' && v.v === lit;
        return ok ? [] : [`${path}: expected ${JSON.stringify(lit)}, got ${show(v)}`];
      }
      case 'range': {
        const { Min, Max, Inclusive } = (t as Range).Value;
        if (v.t !== 'uint' && v.t !== 'nint') return [`${path}: expected an integer in ${Min.Value}..${Max.Value}, got ${show(v)}`];
        const n = v.v;
        const ok = n >= BigInt(Min.Value as number) && (Inclusive ? n <= BigInt(Max.Value as number) : n < BigInt(Max.Value as number));
        return ok ? [] : [`${path}: ${n} is outside ${Min.Value}..${Max.Value}`];
      }
      default: {
        const c = t as Controlled;
        const base = this.native(c.Type, v, path);
        if (base.length > 0 || !c.Operator) return base;
        return this.control(c, v, path);
      }
    }
  }

  private control(c: Controlled, v: Typed, path: string): string[] {
    const op = c.Operator;
    if (op.Type === 'regexp') {
      const re = new RegExp(`^(?:${String((op.Value as Literal).Value)})$`);
      return v.t === 'tstr' && re.test(v.v) ? [] : [`${path}: ${show(v)} does not match ${re}`];
    }
    if (op.Type === 'size') {
      const size = v.t === 'bstr' ? v.v.length : v.t === 'tstr' ? Buffer.byteLength(v.v) : v.t === 'uint' ? Math.ceil(v.v.toString(16).length / 2) : NaN;
      const bound = op.Value;
      const ok = bound.Type === 'literal'
        ? (v.t === 'uint' ? size <= (bound.Value as number) : size === bound.Value)
        : size >= ((bound as Range).Value.Min.Value as number) && size <= ((bound as Range).Value.Max.Value as number);
      return ok ? [] : [`${path}: size ${size} of ${show(v)} is not ${JSON.stringify(bound.Value)}`];
    }
    throw new Error(`control .${op.Type} is not supported here`);
  }

  private native(name: string, v: Typed, path: string): string[] {
    const ok: Record<string, boolean> = {
      any: true,
      uint: v.t === 'uint',
      nint: v.t === 'nint',
      int: v.t === 'uint' || v.t === 'nint',
      tstr: v.t === 'tstr',
      text: v.t === 'tstr',
      bstr: v.t === 'bstr',
      bytes: v.t === 'bstr',
      bool: v.t === 'bool',
      true: v.t === 'bool' && v.v === true,
      false: v.t === 'bool' && v.v === false,
      null: v.t === 'null',
      nil: v.t === 'null',
      float: v.t === 'float',
    };
    if (!(name in ok)) throw new Error(`type ${name} is not supported here`);
    return ok[name] ? [] : [`${path}: expected ${name}, got ${show(v)}`];
  }

  /** A group's entries, group references spliced in. */
  private entries(props: Property[]): Property[] {
    return props.flatMap((p) => {
      const t = choices(p.Type);
      if (p.Name === '' && t.length === 1 && isRef(t[0])) {
        const r = this.rule(t[0].Value);
        if (r.Type === 'group') return this.entries(r.Properties);
      }
      return [p];
    });
  }

  private map(props: Property[], v: Typed, path: string): string[] {
    if (v.t !== 'map') return [`${path}: expected a map, got ${show(v)}`];
    const errors: string[] = [];
    const seen = new Set<number>();
    const keyIndex = (k: string) => v.v.findIndex(([key]) => key.t === 'tstr' && key.v === k);
    for (const p of this.entries(props)) {
      if (p.HasCut) {
        const i = keyIndex(p.Name);
        if (i < 0) {
          if (p.Occurrence.n > 0) errors.push(`${path}.${p.Name}: missing`);
          continue;
        }
        seen.add(i);
        errors.push(...this.oneOf(choices(p.Type), v.v[i][1], `${path}.${p.Name}`));
      } else {
        // `keytype => valuetype`: every key not claimed by name
        v.v.forEach(([key, value], i) => {
          if (seen.has(i) || this.native(p.Name, key, path).length > 0) return;
          seen.add(i);
          errors.push(...this.oneOf(choices(p.Type), value, `${path}[${show(key)}]`));
        });
      }
    }
    v.v.forEach(([key], i) => {
      if (!seen.has(i)) errors.push(`${path}: unexpected key ${show(key)}`);
    });
    return errors;
  }

  private array(props: Property[], v: Typed, path: string): string[] {
    if (v.t !== 'array') return [`${path}: expected an array, got ${show(v)}`];
    const items = v.v;
    let i = 0;
    for (const p of props) {
      const max = p.Occurrence.m ?? Infinity;
      let count = 0;
      const label = p.Name ? `${path}.${p.Name}` : path;
      while (count < max && i < items.length) {
        // an entry of fixed occurrence takes its item even when it does not conform, to say why
        const errs = this.oneOf(choices(p.Type), items[i], p.Name ? label : `${path}[${i}]`);
        if (errs.length > 0) {
          if (count < p.Occurrence.n) return errs;
          break;
        }
        i++;
        count++;
      }
      if (count < p.Occurrence.n) return [`${label}: expected at least ${p.Occurrence.n}, found ${count}`];
    }
    return i === items.length ? [] : [`${path}: ${items.length - i} unexpected items from index ${i}`];
  }
}
