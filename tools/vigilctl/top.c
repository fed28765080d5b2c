/*
 * top.c - `vigilctl top`: a live full-screen view of the workers, worst first.
 *
 * Part of vigilctl (see tools/vigilctl.c and ctl.h for the whole).
 */
#include "ctl.h"

#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>

/*
 * A live view of the segment, read-only.  Each refresh (every
 * TOP_REFRESH_MS) makes one pass over the slots, copying the live ones
 * into a row array that grows only when the fleet does (never per frame),
 * sorts an index array of the rows that pass the type filter, and renders
 * only the rows on screen into a frame buffer sized by the terminal, which
 * goes out in one write().  Beat rates are the difference of view.beats
 * between two refreshes, kept per slot (16 bytes a slot, calloc'd once:
 * pages of slots never used are never touched).
 */
#define TOP_REFRESH_MS 500
#define TOP_BREAKERS_MAX 64
#define TOP_BREAKERS_REREAD_NS (5 * VIGIL_NS_PER_S)
#define TOP_HEAD_LINES 6 /* title, vigild, totals, breakers, position, column names */
#define TOP_LINE_MAX 1024

enum top_sort { SORT_HEALTH, SORT_ID, SORT_AGE, SORT_TYPE, SORT_COUNT };
static const char *const top_sort_names[SORT_COUNT] = {"health", "id", "age", "type"};
static const char *const top_sort_desc[SORT_COUNT] = {"zombies, then lowest health first", "by id",
						       "longest silent first", "by type, then lowest health"};

enum top_attr { ATTR_NONE, ATTR_HEAD, ATTR_ZOMBIE, ATTR_BREAKER, ATTR_ALERT };

struct top_row {
	uint32_t slot;
	int32_t pid;
	int16_t health;   /* -1 unknown */
	int16_t progress; /* -1 unknown */
	bool zombie;
	bool missed;
	const char *state;
	uint64_t last_seen_ms; /* 0 unknown */
	double rate;           /* beats/s; < 0 unknown */
	char id[VIGIL_ID_MAX + 1];
	char type[VIGIL_ID_MAX + 1];
};

struct top {
	const struct common *c;
	struct vigil_segment seg;
	struct top_row *rows;
	uint32_t *order;
	size_t nrows, norder, cap;
	uint64_t *prev_beats; /* per slot: beats + 1 at the last refresh; 0 unknown */
	uint64_t *prev_gen;
	uint64_t prev_ns, prev_ticks;
	bool have_prev;
	double ticks_per_s, beats_per_s; /* < 0 unknown */
	pid_t vigild;                    /* 0: not running; -1: running, pid not visible here */
	uint64_t now_ms;
	size_t workers, zombies, missed, fresh;
	int sort;
	bool reverse;
	char filter[VIGIL_ID_MAX + 1]; /* "" all types */
	size_t scroll;
	char open_types[TOP_BREAKERS_MAX][VIGIL_ID_MAX + 1];
	size_t nopen;
	bool bdir_known;
	dev_t bdir_dev;
	ino_t bdir_ino;
	struct timespec bdir_mtime;
	uint64_t bdir_read_ns;
	/* the screen */
	bool live;
	int term_rows, term_cols;
	char *frame;
	size_t frame_len, frame_cap;
	int y; /* next screen line */
};

static int top_cmp_health(const struct top_row *x, const struct top_row *y)
{
	if (x->zombie != y->zombie)
		return x->zombie ? -1 : 1;
	if (x->health != y->health) {
		if (x->health < 0)
			return 1; /* unknown (new) last */
		if (y->health < 0)
			return -1;
		return x->health < y->health ? -1 : 1;
	}
	return 0;
}

static int top_cmp(const void *a, const void *b, void *arg)
{
	const struct top *t = arg;
	const struct top_row *x = &t->rows[*(const uint32_t *)a], *y = &t->rows[*(const uint32_t *)b];
	int r = 0;
	switch (t->sort) {
	case SORT_HEALTH: r = top_cmp_health(x, y); break;
	case SORT_AGE:
		if (x->last_seen_ms != y->last_seen_ms) {
			if (x->last_seen_ms == 0)
				r = 1;
			else if (y->last_seen_ms == 0)
				r = -1;
			else
				r = x->last_seen_ms < y->last_seen_ms ? -1 : 1;
		}
		break;
	case SORT_TYPE:
		r = strcmp(x->type, y->type);
		if (r == 0)
			r = top_cmp_health(x, y);
		break;
	default: break;
	}
	if (r == 0)
		r = strcmp(x->id, y->id);
	if (r == 0)
		r = x->slot < y->slot ? -1 : x->slot > y->slot;
	return t->reverse ? -r : r;
}

/* The index of the rows that pass the filter, sorted. */
static void top_order(struct top *t)
{
	t->norder = 0;
	for (size_t i = 0; i < t->nrows; i++)
		if (t->filter[0] == '\0' || strcmp(t->rows[i].type, t->filter) == 0)
			t->order[t->norder++] = (uint32_t)i;
	qsort_r(t->order, t->norder, sizeof t->order[0], top_cmp, t);
}

/* The next type filter: the smallest type after the current one, then all. */
static void top_next_type(struct top *t)
{
	const char *best = NULL;
	for (size_t i = 0; i < t->nrows; i++) {
		const char *ty = t->rows[i].type;
		if (strcmp(ty, t->filter) > 0 && (best == NULL || strcmp(ty, best) < 0))
			best = ty;
	}
	char next[VIGIL_ID_MAX + 1] = "";
	if (best != NULL)
		ctl_copy_field(next, best);
	memcpy(t->filter, next, sizeof next);
}

static bool top_breaker_open(const struct top *t, const char *type)
{
	size_t n = t->nopen < TOP_BREAKERS_MAX ? t->nopen : TOP_BREAKERS_MAX;
	for (size_t i = 0; i < n; i++)
		if (strcmp(t->open_types[i], type) == 0)
			return true;
	return false;
}

/* Rereads the open breakers when their directory changed (or every 5 s). */
static void top_breakers(struct top *t)
{
	int fd = ctl_open_home_dir(t->c, "coordination/circuit-breakers", false);
	if (fd < 0) {
		t->nopen = 0;
		t->bdir_known = false;
		return;
	}
	struct stat st;
	uint64_t now = vigil_mono_ns();
	if (fstat(fd, &st) == 0 && t->bdir_known && st.st_dev == t->bdir_dev && st.st_ino == t->bdir_ino &&
	    st.st_mtim.tv_sec == t->bdir_mtime.tv_sec && st.st_mtim.tv_nsec == t->bdir_mtime.tv_nsec &&
	    now - t->bdir_read_ns < TOP_BREAKERS_REREAD_NS) {
		close(fd);
		return;
	}
	t->nopen = ctl_read_open_breakers(fd, t->open_types, TOP_BREAKERS_MAX);
	t->bdir_known = true;
	t->bdir_dev = st.st_dev;
	t->bdir_ino = st.st_ino;
	t->bdir_mtime = st.st_mtim;
	t->bdir_read_ns = now;
	close(fd);
}

/* One pass over the slots.  -ENOMEM when the row array cannot grow. */
static int top_collect(struct top *t)
{
	uint64_t now_ns = vigil_mono_ns();
	double dt = t->have_prev ? (double)(now_ns - t->prev_ns) / 1e9 : 0;
	uint64_t ticks = atomic_load_explicit(&t->seg.hdr->supervisor_ticks, memory_order_relaxed);
	t->ticks_per_s = t->have_prev && dt > 0 && ticks >= t->prev_ticks ? (double)(ticks - t->prev_ticks) / dt : -1;
	t->vigild = ctl_supervisor_alive(&t->seg);
	t->now_ms = vigil_unix_ms();
	t->nrows = 0;
	t->workers = t->zombies = t->missed = t->fresh = 0;
	t->beats_per_s = -1;
	/* Bounded by the slot count copied at open. */
	for (uint32_t i = 0; i < t->seg.slots; i++) {
		struct row r;
		if (!ctl_read_slot(&t->seg, i, &r))
			continue;
		if (t->nrows == t->cap) {
			size_t ncap = t->cap * 2;
			struct top_row *nr = realloc(t->rows, ncap * sizeof *nr);
			if (nr == NULL)
				return -ENOMEM;
			t->rows = nr;
			uint32_t *no = realloc(t->order, ncap * sizeof *no);
			if (no == NULL)
				return -ENOMEM;
			t->order = no;
			t->cap = ncap;
		}
		struct top_row *o = &t->rows[t->nrows++];
		o->slot = i;
		o->pid = r.pid;
		o->health = (int16_t)r.health;
		o->progress = (int16_t)r.progress;
		o->state = r.state;
		o->zombie = strcmp(r.state, "zombie") == 0;
		o->missed = strcmp(r.state, "missed") == 0 || strcmp(r.state, "timeout") == 0;
		o->last_seen_ms = r.last_seen_ms;
		ctl_copy_field(o->id, r.id[0] != '\0' ? r.id : "-");
		ctl_copy_field(o->type, r.type[0] != '\0' ? r.type : "-");
		o->rate = -1;
		if (r.beats >= 0) {
			uint64_t b1 = (uint64_t)r.beats + 1;
			if (t->have_prev && dt > 0 && t->prev_gen[i] == r.gen && t->prev_beats[i] != 0 &&
			    b1 >= t->prev_beats[i])
				o->rate = (double)(b1 - t->prev_beats[i]) / dt;
			t->prev_beats[i] = b1;
		} else {
			t->prev_beats[i] = 0;
		}
		t->prev_gen[i] = r.gen;
		t->workers++;
		t->zombies += o->zombie;
		t->missed += o->missed;
		t->fresh += o->health < 0;
		if (o->rate >= 0)
			t->beats_per_s = (t->beats_per_s < 0 ? 0 : t->beats_per_s) + o->rate;
	}
	t->prev_ns = now_ns;
	t->prev_ticks = ticks;
	t->have_prev = true;
	top_breakers(t);
	return 0;
}

/* ---- top: drawing ---- */

static const char *ascii_text(const char *s, char *out, size_t len)
{
	size_t o = 0;
	for (; s != NULL && *s != '\0' && o + 1 < len; s++) {
		unsigned char ch = (unsigned char)*s;
		out[o++] = (ch < 0x20 || ch >= 0x7f) ? '?' : (char)ch;
	}
	out[o] = '\0';
	return out;
}

static void frame_add(struct top *t, const char *s, size_t n)
{
	if (t->frame_len + n > t->frame_cap)
		n = t->frame_cap - t->frame_len;
	memcpy(t->frame + t->frame_len, s, n);
	t->frame_len += n;
}

/* One line of the view: on the screen (clipped to its width, with its
 * attribute) when live, else printed as is. */
static void top_line(struct top *t, enum top_attr attr, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void top_line(struct top *t, enum top_attr attr, const char *fmt, ...)
{
	char line[TOP_LINE_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (!t->live) {
		puts(line);
		return;
	}
	if (t->y >= t->term_rows)
		return;
	static const char *const on[] = {
		[ATTR_NONE] = "", [ATTR_HEAD] = "\033[7m", [ATTR_ZOMBIE] = "\033[1;31m",
		[ATTR_BREAKER] = "\033[33m", [ATTR_ALERT] = "\033[1;31m",
	};
	char pos[32];
	int pn = snprintf(pos, sizeof pos, "\033[%d;1H", t->y + 1);
	frame_add(t, pos, (size_t)pn);
	frame_add(t, on[attr], strlen(on[attr]));
	size_t len = strlen(line);
	if (len > (size_t)t->term_cols)
		len = (size_t)t->term_cols;
	frame_add(t, line, len);
	if (attr != ATTR_NONE)
		frame_add(t, "\033[0m", 4);
	frame_add(t, "\033[K", 3);
	t->y++;
}

static void top_fmt_age(uint64_t now_ms, uint64_t last_ms, char out[24])
{
	if (last_ms == 0) {
		snprintf(out, 24, "-");
		return;
	}
	unsigned long long d = now_ms > last_ms ? now_ms - last_ms : 0;
	if (d < 10000)
		snprintf(out, 24, "%.1fs", (double)d / 1000.0);
	else if (d < 60000)
		snprintf(out, 24, "%llus", d / 1000);
	else if (d < 3600000)
		snprintf(out, 24, "%llum%02llus", d / 60000, d / 1000 % 60);
	else if (d < 86400000)
		snprintf(out, 24, "%lluh%02llum", d / 3600000, d / 60000 % 60);
	else
		snprintf(out, 24, "%llud%02lluh", d / 86400000, d / 3600000 % 24);
}

/* "[#########-]  90": one # per full 10 points. */
static void top_fmt_health(int health, char out[24])
{
	char bar[11];
	int full = health < 0 ? 0 : health / 10;
	for (int i = 0; i < 10; i++)
		bar[i] = health < 0 ? ' ' : i < full ? '#' : '-';
	bar[10] = '\0';
	if (health < 0)
		snprintf(out, 24, "[%s]   -", bar);
	else
		snprintf(out, 24, "[%s] %3d", bar, health);
}

#define TOP_COLS "%-16s  %-*s  %-*s  %-8s %5s %8s %7s %7s"

static void top_draw(struct top *t)
{
	char home[512], shm[300], iso[21];
	t->y = 0;
	size_t body;
	if (t->live) {
		int b = t->term_rows - TOP_HEAD_LINES - 1;
		body = b > 1 ? (size_t)b : 1;
	} else {
		body = t->norder;
	}
	size_t max_scroll = t->norder > body ? t->norder - body : 0;
	if (t->scroll > max_scroll)
		t->scroll = max_scroll;
	size_t first = t->scroll, last = first + body < t->norder ? first + body : t->norder;

	vigil_iso8601(t->now_ms, iso);
	top_line(t, ATTR_NONE, "vigil top - home %s  segment %s  %s", ascii_text(t->c->home, home, sizeof home),
		 ascii_text(t->c->shm, shm, sizeof shm), iso);
	char pb[24];
	if (t->vigild == 0)
		top_line(t, ATTR_ALERT, "vigild NOT RUNNING (no live supervisor on the segment; values are stale)");
	else if (t->ticks_per_s < 0)
		top_line(t, ATTR_NONE, "vigild pid %s", ctl_pid_text(t->vigild, pb));
	else
		top_line(t, t->ticks_per_s == 0 ? ATTR_ALERT : ATTR_NONE, "vigild pid %s  %.1f ticks/s%s",
			 ctl_pid_text(t->vigild, pb), t->ticks_per_s, t->ticks_per_s == 0 ? "  (NOT TICKING)" : "");
	char bps[32];
	if (t->beats_per_s < 0)
		snprintf(bps, sizeof bps, "-");
	else
		snprintf(bps, sizeof bps, "%.1f", t->beats_per_s);
	top_line(t, t->zombies > 0 ? ATTR_ZOMBIE : ATTR_NONE, "workers %zu  zombies %zu  missed %zu  new %zu  beats/s %s",
		 t->workers, t->zombies, t->missed, t->fresh, bps);
	if (t->nopen == 0) {
		top_line(t, ATTR_NONE, "breakers open: none");
	} else {
		char list[TOP_LINE_MAX] = "";
		size_t n = t->nopen < TOP_BREAKERS_MAX ? t->nopen : TOP_BREAKERS_MAX, len = 0;
		for (size_t i = 0; i < n && len + VIGIL_ID_MAX + 16 < sizeof list; i++)
			len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i > 0 ? ", " : "", t->open_types[i]);
		top_line(t, ATTR_BREAKER, "breakers open: %zu (%s%s)", t->nopen, list, t->nopen > n ? ", ..." : "");
	}
	char shown[64];
	if (t->norder == 0)
		snprintf(shown, sizeof shown, "no workers");
	else if (!t->live)
		snprintf(shown, sizeof shown, "%zu workers", t->norder);
	else
		snprintf(shown, sizeof shown, "rows %zu-%zu of %zu", first + 1, last, t->norder);
	top_line(t, ATTR_NONE, "%s  type: %s  sort: %s (%s%s)", shown, t->filter[0] != '\0' ? t->filter : "all",
		 top_sort_names[t->sort], top_sort_desc[t->sort], t->reverse ? ", reversed" : "");

	/* Column widths from the rows shown only. */
	int idw = 2, tyw = 4;
	for (size_t k = first; k < last; k++) {
		const struct top_row *r = &t->rows[t->order[k]];
		int il = (int)strlen(r->id), tl = (int)strlen(r->type);
		idw = il > idw ? il : idw;
		tyw = tl > tyw ? tl : tyw;
	}
	top_line(t, ATTR_HEAD, TOP_COLS, "HEALTH", idw, "ID", tyw, "TYPE", "STATE", "PROG", "PID", "AGE", "BEAT/S");
	for (size_t k = first; k < last; k++) {
		const struct top_row *r = &t->rows[t->order[k]];
		char health[24], prog[8], pid[16], age[24], rate[24];
		top_fmt_health(r->health, health);
		if (r->progress < 0)
			snprintf(prog, sizeof prog, "-");
		else
			snprintf(prog, sizeof prog, "%d%%", r->progress);
		snprintf(pid, sizeof pid, "%d", (int)r->pid);
		top_fmt_age(t->now_ms, r->last_seen_ms, age);
		if (r->rate < 0)
			snprintf(rate, sizeof rate, "-");
		else
			snprintf(rate, sizeof rate, "%.1f", r->rate);
		enum top_attr a = r->zombie ? ATTR_ZOMBIE : top_breaker_open(t, r->type) ? ATTR_BREAKER : ATTR_NONE;
		top_line(t, a, TOP_COLS, health, idw, r->id, tyw, r->type, r->state, prog, pid, age, rate);
	}
	if (t->live) {
		/* The key line sits on the last screen line; the lines between are cleared. */
		char clr[32];
		int n = snprintf(clr, sizeof clr, "\033[%d;1H\033[J", t->y + 1);
		frame_add(t, clr, (size_t)n);
		t->y = t->term_rows - 1;
		top_line(t, ATTR_HEAD, "q quit  s sort  t type  r reverse  j/k arrows scroll  PgUp/PgDn page  g/G top/bottom");
	}
}

/* ---- top: the terminal ---- */

static struct termios top_saved;
static bool top_saved_valid, top_screen_on;
static volatile sig_atomic_t top_quit_sig, top_resized, top_suspend;

static void top_write_all(const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDOUT_FILENO, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

static void top_term_restore(void)
{
	if (top_screen_on) {
		static const char leave[] = "\033[0m\033[?25h\033[?1049l";
		top_write_all(leave, sizeof leave - 1);
		top_screen_on = false;
	}
	if (top_saved_valid) {
		tcsetattr(STDIN_FILENO, TCSADRAIN, &top_saved);
		top_saved_valid = false;
	}
}

/* Keys without echo or line buffering (signals stay on: ^C is SIGINT),
 * the alternate screen, no cursor. */
static void top_term_enter(void)
{
	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &top_saved) == 0) {
		struct termios raw = top_saved;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO | IEXTEN);
		raw.c_iflag &= ~(tcflag_t)(IXON | ICRNL);
		raw.c_cc[VMIN] = 1;
		raw.c_cc[VTIME] = 0;
		if (tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) == 0)
			top_saved_valid = true;
	}
	static const char enter[] = "\033[?1049h\033[?25l\033[H\033[2J";
	top_write_all(enter, sizeof enter - 1);
	top_screen_on = true;
}

static void top_on_signal(int sig)
{
	if (sig == SIGWINCH || sig == SIGCONT)
		top_resized = 1;
	else if (sig == SIGTSTP)
		top_suspend = 1;
	else
		top_quit_sig = sig;
}

static void top_signals(bool install)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH, SIGTSTP, SIGCONT};
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = install ? top_on_signal : SIG_DFL; /* no SA_RESTART: poll() returns */
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaction(sigs[i], &sa, NULL);
}

/* The terminal's size; the frame buffer follows it. */
static int top_resize(struct top *t)
{
	struct winsize ws;
	int rows = 24, cols = 80;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
		rows = ws.ws_row;
		cols = ws.ws_col;
	}
	if (cols > TOP_LINE_MAX - 1)
		cols = TOP_LINE_MAX - 1;
	size_t need = (size_t)rows * ((size_t)cols + 48) + 64;
	if (need > t->frame_cap) {
		char *f = realloc(t->frame, need);
		if (f == NULL)
			return -ENOMEM;
		t->frame = f;
		t->frame_cap = need;
	}
	t->term_rows = rows;
	t->term_cols = cols;
	return 0;
}

/* Handles the keys in buf[0..n); false when the user quits. */
static bool top_keys(struct top *t, const unsigned char *buf, size_t n)
{
	size_t page = t->term_rows > TOP_HEAD_LINES + 2 ? (size_t)(t->term_rows - TOP_HEAD_LINES - 1) : 1;
	for (size_t i = 0; i < n; i++) {
		int k = buf[i];
		if (k == 0x1b && i + 1 < n && (buf[i + 1] == '[' || buf[i + 1] == 'O')) {
			/* CSI / SS3: ESC [ A, ESC O A, ESC [ 5 ~ ... */
			size_t j = i + 2;
			int num = 0;
			while (j < n && buf[j] >= '0' && buf[j] <= '9')
				num = num * 10 + (buf[j++] - '0');
			if (j >= n)
				break;
			switch (buf[j]) {
			case 'A': k = 'k'; break;
			case 'B': k = 'j'; break;
			case 'H': k = 'g'; break;
			case 'F': k = 'G'; break;
			case '~': k = num == 5 ? 'b' : num == 6 ? ' ' : (num == 1 || num == 7) ? 'g' : (num == 4 || num == 8) ? 'G' : 0; break;
			default: k = 0; break;
			}
			i = j;
		}
		switch (k) {
		case 'q': case 'Q': return false;
		case 's':
			t->sort = (t->sort + 1) % SORT_COUNT;
			t->scroll = 0;
			top_order(t);
			break;
		case 't':
			top_next_type(t);
			t->scroll = 0;
			top_order(t);
			break;
		case 'r':
			t->reverse = !t->reverse;
			top_order(t);
			break;
		case 'j': t->scroll++; break;
		case 'k': t->scroll = t->scroll > 0 ? t->scroll - 1 : 0; break;
		case ' ': case 'f': case 0x06: t->scroll += page; break;
		case 'b': case 0x02: t->scroll = t->scroll > page ? t->scroll - page : 0; break;
		case 'g': t->scroll = 0; break;
		case 'G': t->scroll = SIZE_MAX / 2; break; /* clamped when drawn */
		default: break;
		}
	}
	return true;
}

static int top_live(struct top *t)
{
	if (top_resize(t) < 0) {
		fprintf(stderr, "vigilctl top: out of memory\n");
		return EXIT_FAIL;
	}
	top_signals(true);
	atexit(top_term_restore);
	top_term_enter();
	bool keys = top_saved_valid;
	uint64_t next = 0;
	bool dirty = true;
	int rc = EXIT_OK;
	while (top_quit_sig == 0) {
		if (top_suspend) {
			top_suspend = 0;
			top_term_restore();
			signal(SIGTSTP, SIG_DFL);
			raise(SIGTSTP); /* stops here until SIGCONT */
			top_signals(true);
			top_term_enter();
			top_resized = 1;
		}
		if (top_resized) {
			top_resized = 0;
			if (top_resize(t) < 0) {
				rc = EXIT_FAIL;
				break;
			}
			top_write_all("\033[2J", 4);
			dirty = true;
		}
		uint64_t now = vigil_mono_ns();
		if (now >= next) {
			if (top_collect(t) < 0) {
				rc = EXIT_FAIL;
				break;
			}
			top_order(t);
			next = now + (uint64_t)TOP_REFRESH_MS * VIGIL_NS_PER_MS;
			dirty = true;
		}
		if (dirty) {
			t->frame_len = 0;
			top_draw(t);
			top_write_all(t->frame, t->frame_len);
			dirty = false;
		}
		now = vigil_mono_ns();
		int wait = next > now ? (int)((next - now) / VIGIL_NS_PER_MS) + 1 : 0;
		struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
		int pn = poll(&p, keys ? 1 : 0, wait);
		if (pn > 0 && (p.revents & POLLIN)) {
			unsigned char buf[64];
			ssize_t r = read(STDIN_FILENO, buf, sizeof buf);
			if (r == 0)
				break; /* the terminal went away */
			if (r > 0) {
				if (!top_keys(t, buf, (size_t)r))
					break;
				dirty = true;
			}
		} else if (pn > 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL))) {
			break;
		}
	}
	top_term_restore();
	top_signals(false);
	if (rc != EXIT_OK)
		fprintf(stderr, "vigilctl top: out of memory\n");
	if (top_quit_sig != 0 && top_quit_sig != SIGINT && top_quit_sig != SIGQUIT) {
		/* Die of the signal, as the sender expects (the terminal is restored). */
		raise(top_quit_sig);
	}
	return rc;
}

/* What `vigilctl top --help` prints after the usage line. */
static void top_help(const void *ctx)
{
	(void)ctx;
	printf("\n"
	       "A full-screen view of the live workers, read from the shared-memory segment\n"
	       "(a read-only mapping: vigild is never blocked) every %d ms.  The top lines\n"
	       "show vigild's pid and ticks/s, the totals (workers, zombies, workers missing\n"
	       "beats, workers not yet scored, beats/s) and the open circuit breakers; then\n"
	       "one row per worker:\n"
	       "  HEALTH (bar and score)  ID  TYPE  STATE  PROG  PID  AGE (since its last\n"
	       "  beat)  BEAT/S (beats vigild saw per second since the last refresh)\n"
	       "sorted worst first: zombies, then lowest health (--sort health, default);\n"
	       "--sort id, age (longest silent first) or type; --reverse reverses.\n"
	       "Zombies are shown in red, workers whose type's breaker is open in yellow.\n"
	       "\n"
	       "Keys: q quit, s next sort, t next type filter (all, then each type),\n"
	       "r reverse, j/k or arrows scroll one row, PgUp/PgDn (b/space) one page,\n"
	       "g/G top/bottom.  Ctrl-C also quits; the terminal is restored on exit,\n"
	       "SIGINT, SIGTERM, SIGHUP and Ctrl-Z.\n"
	       "\n"
	       "--once prints one frame as plain text (no escapes, every row) and exits;\n"
	       "it samples twice, %d ms apart, so that the rates are known.\n"
	       "--type T shows only workers of type T.\n",
	       TOP_REFRESH_MS, TOP_REFRESH_MS);
}

int ctl_cmd_top(int argc, char **argv, struct common *c)
{
	static const struct option opts[] = {
		{"once", no_argument, NULL, '1'},
		{"type", required_argument, NULL, 't'},
		{"sort", required_argument, NULL, 's'},
		{"reverse", no_argument, NULL, 'r'},
		COMMON_OPTIONS,
	};
	static const struct ctl_opts parse = {"top", ":h", opts, top_help, NULL};
	bool once = false, reverse = false;
	const char *type = NULL;
	int sort = SORT_HEALTH;
	char rb[300];
	int opt;
	ctl_opt_begin();
	while ((opt = ctl_opt_next(&parse, argc, argv, c)) != -1) {
		switch (opt) {
		case '1': once = true; break;
		case 't': type = optarg; break;
		case 's':
			sort = -1;
			for (int i = 0; i < SORT_COUNT; i++)
				if (strcmp(optarg, top_sort_names[i]) == 0)
					sort = i;
			if (sort < 0) {
				fprintf(stderr, "vigilctl top: invalid --sort '%s': want health, id, age or type\n",
					ctl_render_arg(optarg, rb, sizeof rb));
				return EXIT_USAGE;
			}
			break;
		case 'r': reverse = true; break;
		case CTL_OPT_HELP: return EXIT_OK;
		default: return ctl_bad_option("top", opt, argv);
		}
	}
	if (ctl_no_operands("top", argc, argv) != EXIT_OK)
		return EXIT_USAGE;
	if (type != NULL && !vigil_id_valid(type)) {
		fprintf(stderr, "vigilctl top: invalid worker type '%s': want [A-Za-z0-9._-]{1,64}, not starting with '.'\n",
			ctl_render_arg(type, rb, sizeof rb));
		return EXIT_USAGE;
	}
	if (!once && !isatty(STDOUT_FILENO)) {
		fprintf(stderr, "vigilctl top: standard output is not a terminal; use --once for one plain frame\n");
		return EXIT_USAGE;
	}
	int rc = ctl_resolve(c);
	if (rc != EXIT_OK)
		return rc;
	static struct top t; /* large (open breaker names); one per process */
	memset(&t, 0, sizeof t);
	t.c = c;
	t.sort = sort;
	t.reverse = reverse;
	t.live = !once;
	if (type != NULL)
		ctl_copy_field(t.filter, type);
	rc = ctl_open_segment(c, &t.seg, false);
	if (rc != EXIT_OK)
		return rc;
	t.cap = t.seg.slots < 1024 ? t.seg.slots : 1024;
	t.rows = malloc(t.cap * sizeof *t.rows);
	t.order = malloc(t.cap * sizeof *t.order);
	t.prev_beats = calloc(t.seg.slots, sizeof *t.prev_beats);
	t.prev_gen = calloc(t.seg.slots, sizeof *t.prev_gen);
	if (t.rows == NULL || t.order == NULL || t.prev_beats == NULL || t.prev_gen == NULL) {
		fprintf(stderr, "vigilctl top: out of memory for %u slots\n", t.seg.slots);
		rc = EXIT_FAIL;
	} else if (once) {
		if (top_collect(&t) == 0) {
			ctl_sleep_ms(TOP_REFRESH_MS);
			rc = top_collect(&t) == 0 ? EXIT_OK : EXIT_FAIL;
		} else {
			rc = EXIT_FAIL;
		}
		if (rc == EXIT_OK) {
			top_order(&t);
			top_draw(&t);
			if (fflush(stdout) != 0 || ferror(stdout)) {
				fprintf(stderr, "vigilctl top: cannot write output: %s\n", strerror(errno));
				rc = EXIT_FAIL;
			}
		} else {
			fprintf(stderr, "vigilctl top: out of memory\n");
		}
	} else {
		rc = top_live(&t);
	}
	free(t.rows);
	free(t.order);
	free(t.prev_beats);
	free(t.prev_gen);
	free(t.frame);
	vigil_segment_close(&t.seg);
	return rc;
}

