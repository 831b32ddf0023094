<?php

declare(strict_types=1);

namespace Stask\Http;

use Stask\Exceptions\StaskException;
use Stask\Exceptions\UnavailableException;

/**
 * HTTP over ext-curl: one request, JSON in and out, or a body streamed to or from a file.
 * Every failure becomes an exception of the Stask family; nothing is retried here (a create
 * sent twice would make two tasks).
 */
final class Transport
{
    /**
     * @param string $baseUrl `http://host:port`, without a trailing slash.
     * @param string|null $token The API token, sent as `Authorization: Bearer`.
     * @param float $timeout Seconds for a whole request.
     * @param float $connectTimeout Seconds to connect.
     */
    public function __construct(
        private readonly string $baseUrl,
        private readonly ?string $token,
        private readonly float $timeout,
        private readonly float $connectTimeout,
    ) {
    }

    /** The base URL requests go to. */
    public function baseUrl(): string
    {
        return $this->baseUrl;
    }

    /**
     * A JSON request; the decoded answer of a 2xx.
     *
     * @param array<string, scalar|null> $query Query parameters; `null` values are left out.
     * @param array<string, mixed>|null $body A JSON body (an empty array is sent as `{}`).
     * @return array<string, mixed>
     */
    public function json(string $method, string $path, array $query = [], ?array $body = null, ?float $timeout = null): array
    {
        $url = $this->url($path, $query);
        $headers = ['Accept: application/json'];
        $options = [CURLOPT_CUSTOMREQUEST => $method, CURLOPT_RETURNTRANSFER => true];
        if ($body !== null) {
            $options[CURLOPT_POSTFIELDS] = $body === []
                ? '{}'
                : json_encode($body, JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION);
            $headers[] = 'Content-Type: application/json';
        }
        [$status, $raw] = $this->send($method, $url, $options, $headers, $timeout);
        return $this->decode($status, (string) $raw, $method, $url);
    }

    /**
     * A multipart upload of one file (field `file`), streamed from disk by curl.
     *
     * @return array<string, mixed>
     */
    public function upload(string $path, string $file): array
    {
        $url = $this->url($path);
        $options = [
            CURLOPT_POST => true,
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_POSTFIELDS => ['file' => new \CURLFile($file, 'application/octet-stream', basename($file))],
        ];
        [$status, $raw] = $this->send('POST', $url, $options, ['Accept: application/json'], null);
        return $this->decode($status, (string) $raw, 'POST', $url);
    }

    /**
     * A GET whose body curl writes straight into `$target` (an open file): nothing is held in
     * memory. The HTTP status is returned; the caller reads an error body back from the file.
     *
     * @param resource $target
     */
    public function download(string $path, $target): int
    {
        $url = $this->url($path);
        [$status] = $this->send('GET', $url, [CURLOPT_FILE => $target], [], null);
        return $status;
    }

    /**
     * The exception for an error answer.
     */
    public function error(int $status, string $raw, string $method, string $path): StaskException
    {
        $body = json_decode($raw, true);
        return StaskException::fromResponse($status, is_array($body) ? $body : null, $raw, $method, $this->url($path));
    }

    /** @param array<string, scalar|null> $query */
    public function url(string $path, array $query = []): string
    {
        $query = array_filter($query, fn ($v) => $v !== null);
        $query = array_map(fn ($v) => is_bool($v) ? ($v ? 'true' : 'false') : $v, $query);
        return $this->baseUrl . $path . ($query === [] ? '' : '?' . http_build_query($query));
    }

    /**
     * Runs one curl request.
     *
     * @param array<int, mixed> $options
     * @param list<string> $headers
     * @return array{0: int, 1: string|bool}
     */
    private function send(string $method, string $url, array $options, array $headers, ?float $timeout): array
    {
        if ($this->token !== null && $this->token !== '') {
            $headers[] = 'Authorization: Bearer ' . $this->token;
        }
        $curl = curl_init($url);
        curl_setopt_array($curl, $options + [
            CURLOPT_HTTPHEADER => $headers,
            // Accept every encoding curl can decode: the daemon gzips JSON.
            CURLOPT_ENCODING => '',
            CURLOPT_TIMEOUT_MS => (int) round(($timeout ?? $this->timeout) * 1000),
            CURLOPT_CONNECTTIMEOUT_MS => (int) round($this->connectTimeout * 1000),
            CURLOPT_FOLLOWLOCATION => false,
        ]);
        $raw = curl_exec($curl);
        if ($raw === false) {
            $errno = curl_errno($curl);
            $error = curl_error($curl);
            curl_close($curl);
            $cause = new \RuntimeException("curl error $errno: $error", $errno);
            throw new UnavailableException("sTask is unavailable at $url ($method): $error", 0, null, null, $url, $cause);
        }
        $status = (int) curl_getinfo($curl, CURLINFO_RESPONSE_CODE);
        curl_close($curl);
        return [$status, $raw];
    }

    /** @return array<string, mixed> */
    private function decode(int $status, string $raw, string $method, string $url): array
    {
        $body = json_decode($raw, true);
        if ($status < 200 || $status >= 300) {
            throw StaskException::fromResponse($status, is_array($body) ? $body : null, $raw, $method, $url);
        }
        if (!is_array($body)) {
            throw new StaskException("$method $url: the answer is not JSON: " . mb_substr($raw, 0, 200), $status, null, null, $url);
        }
        return $body;
    }
}
