#!/usr/bin/perl
# Lists the MIME tree of each message as Perl's MIME::Parser (libmime-tools-perl) sees it, one JSON
# line per file, in the common MIME dump format of test/support/mime-compare.ts.
#
#   dump_perl.pl FILE...        (or "-": file names on stdin)
#
# The parser keeps bodies in memory (output_to_core) and parses message/rfc822 parts into a nested
# entity (extract_nested_messages), which becomes the one child of the message/rfc822 node.
use strict;
use warnings;
use Digest::SHA qw(sha256_hex);
use Encode qw(decode);
use JSON::PP;
use MIME::Parser;
use MIME::Words qw(decode_mimewords);
use MIME::Decoder::Binary;

# MIME::Tools' 7bit/8bit decoder turns the CRLF at the end of each chunk it reads into LF: an
# output convention of the library, not a reading of the message. Identity encodings are read
# byte for byte here, as every client does. (Quoted-printable keeps Perl's own decoder: its
# CRLF-to-LF and trailing-blank rules are visible in sha256_text, see text_reading.)
MIME::Decoder::Binary->install('7bit', '8bit', 'binary');

my $json = JSON::PP->new->ascii;

sub decoded_filename {
  my ($head) = @_;
  my $name = $head->recommended_filename;
  return undef unless defined $name;
  # RFC 2047 words in a parameter are not standard but every client decodes them.
  my $text = '';
  for my $w (decode_mimewords($name)) {
    my ($data, $charset) = @$w;
    my $piece = eval { decode($charset // 'iso-8859-1', $data) };
    $text .= defined $piece ? $piece : decode('iso-8859-1', $data);
  }
  return $text;
}

# Same as text_reading in dump_python.py: CRLF as LF, blanks at line ends removed.
sub text_reading {
  my ($body) = @_;
  $body =~ s/\r\n/\n/g;
  $body =~ s/[ \t]+(?=\n|\z)//g;
  return $body;
}

sub walk {
  my ($ent, $depth, $nodes) = @_;
  my $node = { depth => $depth + 0, type => lc($ent->mime_type // 'text/plain') };
  push @$nodes, $node;
  my @kids = $ent->parts;
  if (@kids) {
    walk($_, $depth + 1, $nodes) for @kids;
    return;
  }
  my $body = $ent->bodyhandle ? $ent->bodyhandle->as_string : '';
  $body = '' unless defined $body;
  $node->{size} = length($body) + 0;
  $node->{sha256} = sha256_hex($body);
  $node->{sha256_text} = sha256_hex(text_reading($body));
  $node->{filename} = decoded_filename($ent->head);
}

sub dump_file {
  my ($path) = @_;
  my $parser = MIME::Parser->new;
  $parser->output_to_core(1);
  $parser->extract_nested_messages(1);
  $parser->extract_uuencode(0);
  $parser->decode_headers(0);
  $parser->ignore_errors(1);
  my $result = eval {
    open(my $fh, '<:raw', $path) or die "cannot open: $!\n";
    local $/;
    my $data = <$fh>;
    close $fh;
    my $ent = $parser->parse_data($data);
    my @nodes;
    walk($ent, 0, \@nodes);
    { file => $path, parts => \@nodes };
  };
  return $result // { file => $path, error => "MIME::Parser: " . ($@ =~ s/\s+$//r) };
}

my @files = @ARGV;
if (@files == 1 && $files[0] eq '-') {
  @files = grep { length } map { s/\r?\n$//r } <STDIN>;
}
binmode STDOUT;
$| = 0;
print $json->encode(dump_file($_)), "\n" for @files;
