/**
 * Client authentication and command permissions of a Redis listener, in the
 * manner of Redis ACL users (a subset: passwords and command rules, no key or
 * channel patterns).
 *
 * Command rules are evaluated in order when the config is built, as
 * `ACL SETUSER` does: `+@cat` / `-@cat` allow / deny every command (and
 * subcommand) of an ACL category, `+@all` / `allcommands` and `-@all` /
 * `nocommands` everything, `+name` / `-name` a command with all its
 * subcommands, `+name|sub` / `-name|sub` one subcommand. The result is a set
 * of allowed names ("GET", "CONFIG|GET"), so a request costs one lookup.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { allCommands, commandInfo, type CommandArgs, type CommandInfo } from './commands';

export interface UserConfig {
  name: string;
  /** sha256 of the password. */
  passwordSha256: Buffer;
  commands: string[];
}

/** One compiled user: who may run what. */
export class AclUser {
  constructor(
    readonly name: string,
    private readonly digest: Buffer,
    /** Allowed command names, uppercase, "PARENT|SUB" for subcommands. */
    private readonly allowed: ReadonlySet<string>,
  ) {}

  /** Constant-time comparison of the password's digest. */
  passwordMatches(password: Buffer): boolean {
    return timingSafeEqual(sha256(password), this.digest);
  }

  /**
   * The denied command's name as Redis reports it ("set", "config|get"), or
   * null when allowed. A subcommand is checked when argv[1] names one.
   */
  denied(info: CommandInfo, cmd: CommandArgs): string | null {
    let e = info;
    if (info.subcommands !== null && cmd.argc >= 2) e = info.subcommands.get(cmd.argUpper(1)) ?? info;
    return this.allowed.has(e.name) ? null : e.name.toLowerCase();
  }

  /** For tests and the admin view. */
  allows(name: string): boolean {
    return this.allowed.has(name.toUpperCase());
  }
}

export function sha256(b: Buffer | string): Buffer {
  return createHash('sha256').update(b).digest();
}

/** Every ACL category that some command belongs to (lowercase, without '@'). */
function knownCategories(): Set<string> {
  const s = new Set<string>(['all']);
  for (const c of allCommands()) for (const a of c.acl) s.add(a.toLowerCase());
  return s;
}

/** Checks one rule; returns a problem or null. Used by the config check. */
export function ruleProblem(rule: string): string | null {
  if (rule === 'allcommands' || rule === 'nocommands') return null;
  const sign = rule[0];
  if (sign !== '+' && sign !== '-') return `rule '${rule}' must start with + or - (or be allcommands / nocommands)`;
  const body = rule.slice(1);
  if (body.startsWith('@')) {
    return knownCategories().has(body.slice(1).toLowerCase()) ? null : `unknown ACL category '${body.slice(1)}'`;
  }
  const [parent, sub, extra] = body.toUpperCase().split('|');
  const info = commandInfo(parent ?? '');
  if (info === undefined || extra !== undefined) return `unknown command '${body}'`;
  if (sub !== undefined && (info.subcommands === null || !info.subcommands.has(sub))) return `unknown subcommand '${body}'`;
  return null;
}

/** Applies the rules in order to an empty permission set. Throws on a bad rule. */
export function compileRules(rules: readonly string[]): Set<string> {
  const allowed = new Set<string>();
  const every: CommandInfo[] = [...allCommands()];
  const apply = (add: boolean, name: string) => (add ? allowed.add(name) : allowed.delete(name));
  for (const raw of rules) {
    const problem = ruleProblem(raw);
    if (problem !== null) throw new Error(problem);
    const rule = raw === 'allcommands' ? '+@all' : raw === 'nocommands' ? '-@all' : raw;
    const add = rule[0] === '+';
    const body = rule.slice(1);
    if (body.startsWith('@')) {
      const cat = body.slice(1).toLowerCase();
      for (const c of every) if (cat === 'all' || c.acl.some((a) => a.toLowerCase() === cat)) apply(add, c.name);
      continue;
    }
    const name = body.toUpperCase();
    const info = commandInfo(name.split('|')[0]!)!;
    if (name.includes('|')) {
      apply(add, name);
      continue;
    }
    apply(add, info.name);
    if (info.subcommands !== null) for (const s of info.subcommands.values()) apply(add, s.name);
  }
  return allowed;
}

/** The users of one listener by name. */
export class UserTable {
  private readonly users = new Map<string, AclUser>();
  /** Compared against when the user does not exist, so a miss costs what a hit costs. */
  private readonly dummy = sha256('portway: no such user');

  constructor(users: readonly UserConfig[]) {
    for (const u of users) this.users.set(u.name, new AclUser(u.name, u.passwordSha256, compileRules(u.commands)));
  }

  /** The user when the credentials match, else null. */
  authenticate(name: Buffer | string, password: Buffer): AclUser | null {
    const u = this.users.get(typeof name === 'string' ? name : name.toString('utf8'));
    if (u === undefined) {
      timingSafeEqual(sha256(password), this.dummy);
      return null;
    }
    return u.passwordMatches(password) ? u : null;
  }
}
