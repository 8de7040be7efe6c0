#ifndef CORE_BANNED_H
#define CORE_BANNED_H

/*
 * Functions that overflow buffers, are not thread-safe, hide parse errors,
 * give weak randomness, or allocate past xmalloc (whose failure must abort
 * in one place).
 * Each use becomes a compile error naming the function. Include this after
 * every system header (core.h does it last).
 */
#define BANNED(func) sorry_##func##_is_banned_in_renkei

#undef strcpy
#define strcpy(x, y) BANNED(strcpy)
#undef strcat
#define strcat(x, y) BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) BANNED(strncpy)
#undef strncat
#define strncat(x, y, n) BANNED(strncat)
#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf)
#undef strtok
#define strtok(x, y) BANNED(strtok)
#undef atoi
#define atoi(x) BANNED(atoi)
#undef atol
#define atol(x) BANNED(atol)
#undef atoll
#define atoll(x) BANNED(atoll)
#undef atof
#define atof(x) BANNED(atof)
#undef gmtime
#define gmtime(t) BANNED(gmtime)
#undef localtime
#define localtime(t) BANNED(localtime)
#undef ctime
#define ctime(t) BANNED(ctime)
#undef asctime
#define asctime(t) BANNED(asctime)
#undef gets
#define gets(x) BANNED(gets)
#undef rand
#define rand() BANNED(rand)
#undef srand
#define srand(x) BANNED(srand)
#undef random
#define random() BANNED(random)
#undef srandom
#define srandom(x) BANNED(srandom)
#undef drand48
#define drand48() BANNED(drand48)
#undef strdup
#define strdup(x) BANNED(strdup)
#undef strndup
#define strndup(x, n) BANNED(strndup)
#undef asprintf
#define asprintf(...) BANNED(asprintf)
#undef vasprintf
#define vasprintf(...) BANNED(vasprintf)
#undef tmpnam
#define tmpnam(x) BANNED(tmpnam)
#undef mktemp
#define mktemp(x) BANNED(mktemp)
#undef ctime_r
#define ctime_r(t, b) BANNED(ctime_r)
#undef asctime_r
#define asctime_r(t, b) BANNED(asctime_r)
#undef setenv
#define setenv(k, v, o) BANNED(setenv)
#undef putenv
#define putenv(x) BANNED(putenv)
#undef sscanf
#define sscanf(...) BANNED(sscanf)

#endif
