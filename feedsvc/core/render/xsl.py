"""The XSL stylesheet that turns /feed.xml, /feed.rss and the archive pages into a readable page.

Browsers get the browser page (feedsvc.core.render.html) at a feed's URL, without XSLT, which
they are retiring; this stylesheet stays for any client that still applies the documents'
`<?xml-stylesheet?>`, and shows the same: the titles, one date per entry in the same format
(`article_date` in `DATE_FORMAT`: the Atom entry's `published`, else its `updated`; RSS's
`pubDate`, rewritten from RFC 822), the summaries, and how to subscribe. Feed readers ignore
the instruction.

Only text from the feed is shown (titles, summaries), never its HTML content, so nothing the
articles contain can run in the page. The page's only style is the index page's `STYLE`, allowed
by its hash (`STYLE_HASH`) in the feed page's Content-Security-Policy (feedsvc/web/headers.py); the
XSL itself is a same-origin "script" load in CSP terms (`script-src 'self'`), and feedsvc serves
no script at all.
"""

from __future__ import annotations

from feedsvc.core.render.html import STYLE

STYLESHEET_PATH = "/feed.xsl"

_XSL = """<?xml version="1.0" encoding="UTF-8"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
  xmlns:atom="http://www.w3.org/2005/Atom" xmlns:fh="http://purl.org/syndication/history/1.0"
  exclude-result-prefixes="atom fh">
<xsl:output method="html" encoding="UTF-8" indent="no" doctype-system="about:legacy-compat"/>

<xsl:template match="/">
<html lang="{atom:feed/@xml:lang|rss/channel/language}">
<head>
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<title><xsl:value-of select="atom:feed/atom:title|rss/channel/title"/> (web feed)</title>
<style>@STYLE@</style>
</head>
<body>
<xsl:apply-templates select="atom:feed|rss/channel"/>
</body>
</html>
</xsl:template>

<xsl:template name="subscribe">
<xsl:param name="url"/>
<xsl:param name="format"/>
<div class="subscribe">
<p><strong>This is a web feed</strong> (<xsl:value-of select="$format"/>). To subscribe, copy its address
into your feed reader:</p>
<code class="url"><xsl:value-of select="$url"/></code>
<p>The same articles as <a href="/feed.xml">Atom</a>, <a href="/feed.rss">RSS</a> or
<a href="/feed.json">JSON Feed</a>, and as a <a href="/">web page</a>.</p>
</div>
</xsl:template>

<!-- An RFC 3339 date in UTC (2023-04-16T13:06:27.989000+00:00) as 2023-04-16 13:06 UTC; any other
     form as it is. -->
<xsl:template name="date">
<xsl:param name="iso"/>
<time datetime="{$iso}"><xsl:choose>
<xsl:when test="substring($iso, string-length($iso) - 5) = '+00:00' or substring($iso, string-length($iso)) = 'Z'">
<xsl:value-of select="concat(substring($iso, 1, 10), ' ', substring($iso, 12, 5), ' UTC')"/>
</xsl:when>
<xsl:otherwise><xsl:value-of select="$iso"/></xsl:otherwise>
</xsl:choose></time>
</xsl:template>

<!-- An RFC 822 date in UTC as feedgen writes it (Sun, 16 Apr 2023 13:06:27 +0000) the same way. -->
<xsl:template name="rfc822">
<xsl:param name="date"/>
<xsl:variable name="months" select="'JanFebMarAprMayJunJulAugSepOctNovDec'"/>
<xsl:variable name="name" select="substring($date, 9, 3)"/>
<xsl:variable name="month" select="string-length(substring-before($months, $name)) div 3 + 1"/>
<xsl:choose>
<xsl:when test="string-length($date) = 31 and substring($date, 27) = '+0000' and string-length($name) = 3
  and contains($months, $name) and $month = floor($month)">
<xsl:call-template name="date">
<xsl:with-param name="iso" select="concat(substring($date, 13, 4), '-', format-number($month, '00'), '-',
  substring($date, 6, 2), 'T', substring($date, 18, 8), '+00:00')"/>
</xsl:call-template>
</xsl:when>
<xsl:otherwise><time><xsl:value-of select="$date"/></time></xsl:otherwise>
</xsl:choose>
</xsl:template>

<xsl:template match="atom:feed">
<h1><xsl:value-of select="atom:title"/></h1>
<xsl:if test="atom:subtitle"><p class="sub"><xsl:value-of select="atom:subtitle"/></p></xsl:if>
<xsl:choose>
<xsl:when test="fh:archive">
<p class="subscribe"><strong>This is an archive page</strong> of older articles.
<a href="{atom:link[@rel='current']/@href}">The current feed</a> is the one to subscribe to.</p>
</xsl:when>
<xsl:otherwise>
<xsl:call-template name="subscribe">
<xsl:with-param name="url" select="atom:link[@rel='self']/@href"/>
<xsl:with-param name="format">Atom</xsl:with-param>
</xsl:call-template>
</xsl:otherwise>
</xsl:choose>
<ol>
<xsl:for-each select="atom:entry">
<li>
<xsl:choose>
<xsl:when test="atom:link[@rel='alternate']">
<a href="{atom:link[@rel='alternate']/@href}"><xsl:value-of select="atom:title"/></a>
</xsl:when>
<xsl:otherwise><xsl:value-of select="atom:title"/></xsl:otherwise>
</xsl:choose>
<xsl:call-template name="date">
<xsl:with-param name="iso"><xsl:choose>
<xsl:when test="atom:published"><xsl:value-of select="atom:published"/></xsl:when>
<xsl:otherwise><xsl:value-of select="atom:updated"/></xsl:otherwise>
</xsl:choose></xsl:with-param>
</xsl:call-template>
<xsl:if test="atom:summary"><p class="summary"><xsl:value-of select="atom:summary"/></p></xsl:if>
</li>
</xsl:for-each>
</ol>
<p>
<xsl:for-each select="atom:link[@rel='prev-archive']"><a href="{@href}">Older articles</a> </xsl:for-each>
<xsl:for-each select="atom:link[@rel='next-archive']"><a href="{@href}">Newer articles</a></xsl:for-each>
</p>
</xsl:template>

<xsl:template match="channel">
<h1><xsl:value-of select="title"/></h1>
<p class="sub"><xsl:value-of select="description"/></p>
<xsl:call-template name="subscribe">
<xsl:with-param name="url" select="atom:link[@rel='self']/@href"/>
<xsl:with-param name="format">RSS</xsl:with-param>
</xsl:call-template>
<ol>
<xsl:for-each select="item">
<li>
<xsl:choose>
<xsl:when test="link"><a href="{link}"><xsl:value-of select="title"/></a></xsl:when>
<xsl:otherwise><xsl:value-of select="title"/></xsl:otherwise>
</xsl:choose>
<xsl:call-template name="rfc822">
<xsl:with-param name="date" select="pubDate"/>
</xsl:call-template>
<p class="summary"><xsl:value-of select="description"/></p>
</li>
</xsl:for-each>
</ol>
</xsl:template>

</xsl:stylesheet>
"""

if any(c in STYLE for c in "<>&"):
    raise ValueError("STYLE must be plain XML text to be copied into the stylesheet")
FEED_XSL = _XSL.replace("@STYLE@", STYLE).encode("utf-8")
