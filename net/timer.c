/* net/timer — see timer.h. */
#include "net/timer.h"

#include <stddef.h>
#include <time.h>

uint64_t timer_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void timer_wheel_init(struct timer_wheel *w, uint64_t now_ms)
{
	for (size_t i = 0; i < TIMER_SLOTS; i++)
		w->slots[i].next = w->slots[i].prev = &w->slots[i];
	w->now = now_ms / TIMER_TICK_MS;
	w->now_ms = now_ms;
}

void timer_cancel(struct timer *t)
{
	if (!t->next)
		return;
	t->prev->next = t->next;
	t->next->prev = t->prev;
	t->next = t->prev = NULL;
}

void timer_arm(struct timer_wheel *w, struct timer *t, uint64_t ms)
{
	timer_cancel(t);
	/* From the exact time, not the tick: w->now may be almost a tick behind it. */
	t->expires = (w->now_ms + ms + TIMER_TICK_MS - 1) / TIMER_TICK_MS;
	if (t->expires <= w->now)
		t->expires = w->now + 1;
	struct timer *head = &w->slots[t->expires % TIMER_SLOTS];
	t->next = head->next;
	t->prev = head;
	head->next->prev = t;
	head->next = t;
}

unsigned timer_advance(struct timer_wheel *w, uint64_t now_ms)
{
	uint64_t target = now_ms / TIMER_TICK_MS;
	unsigned fired = 0;
	if (now_ms > w->now_ms)
		w->now_ms = now_ms;
	/* Never walk more than one revolution: every slot is then visited once. */
	if (target > w->now + TIMER_SLOTS)
		w->now = target - TIMER_SLOTS;
	while (w->now < target) {
		w->now++;
		struct timer *head = &w->slots[w->now % TIMER_SLOTS];
		/* Detach the slot so that timers re-armed by fire() into it are not revisited. */
		struct timer pending = { .next = head->next, .prev = head->prev };
		if (pending.next == head)
			continue;
		pending.next->prev = &pending;
		pending.prev->next = &pending;
		head->next = head->prev = head;
		while (pending.next != &pending) {
			struct timer *t = pending.next;
			timer_cancel(t);
			if (t->expires <= w->now) {
				fired++;
				t->fire(t);
			} else {
				/* a later revolution: back into its slot */
				t->next = head->next;
				t->prev = head;
				head->next->prev = t;
				head->next = t;
			}
		}
	}
	return fired;
}
